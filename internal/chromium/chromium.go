// Package chromium starts headless Chromium for browser tests through chromedp.
//
// The browser stays on loopback; package launch holds the flags that make it so.
package chromium

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/p2pcdn/p2pcdn/internal/chromium/launch"
)

// DefaultPath is where Debian's chromium package installs the browser.
const DefaultPath = launch.DefaultPath

type config struct {
	path          string
	width, height int
	startTimeout  time.Duration
	extra         []chromedp.ExecAllocatorOption
}

// Option changes how New starts the browser.
type Option func(*config)

// WithPath runs the Chromium binary at path instead of DefaultPath.
func WithPath(path string) Option { return func(c *config) { c.path = path } }

// WithWindowSize sets the initial window (and so screenshot) size in CSS pixels.
func WithWindowSize(width, height int) Option {
	return func(c *config) { c.width, c.height = width, height }
}

// WithAllocatorOptions adds chromedp allocator options after the loopback-only set; later ones win, so
// a flag set here overrides the default.
func WithAllocatorOptions(opts ...chromedp.ExecAllocatorOption) Option {
	return func(c *config) { c.extra = append(c.extra, opts...) }
}

// Browser is one running Chromium process. Its tabs share cookies and storage.
type Browser struct {
	t        testing.TB
	allocCtx context.Context
	first    context.Context
	log      *testLog
	tabs     int
}

// New starts Chromium and returns it; the browser is stopped when the test ends.
// It fails the test with an installation hint when Chromium is missing.
func New(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	c := config{path: DefaultPath, width: 1280, height: 800, startTimeout: 60 * time.Second}
	for _, o := range opts {
		o(&c)
	}
	c.path = launch.Path(c.path)
	if _, err := exec.LookPath(c.path); err != nil {
		t.Fatalf("chromium not found at %s (%v): install it with `apt-get install chromium` or set P2PCDN_CHROMIUM", c.path, err)
	}

	flags := append(launch.AllocatorOptions(c.path, t.TempDir()), chromedp.WindowSize(c.width, c.height))
	flags = append(flags, c.extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), flags...)
	b := &Browser{t: t, allocCtx: allocCtx, log: &testLog{t: t}}
	tab, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithErrorf(b.log.logf("chromedp error: ")))
	t.Cleanup(func() {
		b.log.close()
		cancelTab()
		cancelAlloc()
	})
	b.watch(tab, "tab0")
	startCtx, cancel := context.WithTimeout(tab, c.startTimeout)
	defer cancel()
	if err := launch.GrantCapturePermissions(startCtx); err != nil {
		t.Fatalf("starting chromium %s: %v", c.path, err)
	}
	b.first = tab
	return b
}

// Tab returns the browser's first tab.
func (b *Browser) Tab() context.Context { return b.first }

// NewTab opens another tab in the same browser; it closes when the test ends.
func (b *Browser) NewTab() context.Context {
	b.t.Helper()
	b.tabs++
	tab, cancel := chromedp.NewContext(b.first)
	b.t.Cleanup(cancel)
	b.watch(tab, fmt.Sprintf("tab%d", b.tabs))
	return tab
}

// watch copies the tab's console output and uncaught exceptions into the test
// log. The copying goroutine ends when the tab's context ends; the test's
// cleanup waits for it.
func (b *Browser) watch(tab context.Context, name string) {
	b.t.Helper()
	msgs := chromedp.Console(tab) // opens the tab, so its failure is reported here
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() {
				b.log.printf("%s exception: %s (%s:%d)", name, m.Text, m.URL, m.Line)
				continue
			}
			b.log.printf("%s console.%s: %s", name, m.Type, m.Text)
		}
	}()
	b.t.Cleanup(func() {
		chromedp.Cancel(tab) //nolint:errcheck // closing a tab at the end of a test
		<-done
	})
}

// testLog forwards to t.Logf until the test is over; events that arrive later
// are dropped because testing panics on logging after completion.
type testLog struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (l *testLog) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.t.Logf(format, args...)
	}
}

func (l *testLog) logf(prefix string) func(string, ...any) {
	return func(format string, args ...any) { l.printf(prefix+format, args...) }
}

func (l *testLog) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

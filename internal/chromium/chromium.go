// Package chromium starts headless Chromium for browser tests through chromedp.
//
// The flags keep the browser on loopback: no QUIC, no background traffic, every
// host name except 127.0.0.1 resolves to nothing, and WebRTC may gather a
// loopback candidate (the tests run in a namespace whose only network is lo).
package chromium

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// DefaultPath is where Debian's chromium package installs the browser.
const DefaultPath = "/usr/bin/chromium"

type config struct {
	path          string
	width, height int
	startTimeout  time.Duration
}

// Option changes how New starts the browser.
type Option func(*config)

// WithPath runs the Chromium binary at path instead of DefaultPath.
func WithPath(path string) Option { return func(c *config) { c.path = path } }

// WithWindowSize sets the initial window (and so screenshot) size in CSS pixels.
func WithWindowSize(width, height int) Option {
	return func(c *config) { c.width, c.height = width, height }
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
	if env := os.Getenv("P2PCDN_CHROMIUM"); env != "" {
		c.path = env
	}
	if _, err := exec.LookPath(c.path); err != nil {
		t.Fatalf("chromium not found at %s (%v): install it with `apt-get install chromium` or set P2PCDN_CHROMIUM", c.path, err)
	}

	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(c.path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(c.width, c.height),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Several tabs take part in one transfer; none may be throttled as "hidden".
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns,Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
	}
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
	// Camera and microphone permission makes Chromium gather host candidates on
	// every interface, loopback included, instead of only the default route.
	for _, name := range []string{"camera", "microphone"} {
		_, err := chromedp.CallBrowser(startCtx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name},
			Setting:    browser.PermissionSettingGranted,
		})
		if err != nil {
			t.Fatalf("starting chromium %s: granting %s permission: %v", c.path, name, err)
		}
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

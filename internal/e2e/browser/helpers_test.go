package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/mediator"
	"github.com/p2pcdn/p2pcdn/internal/testenv"
	"github.com/p2pcdn/p2pcdn/internal/testpeer"
	"github.com/p2pcdn/p2pcdn/web"
)

// bin is the p2pcdn binary under test, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithP2PCDN(m, "e2e/browser", &bin))
}

// Generous bounds: the machine is shared with other test runs. They guard
// against hangs; speed is measured by the benchmarks.
const (
	stepTimeout  = 90 * time.Second
	startTimeout = 60 * time.Second
	runTimeout   = 3 * time.Minute
	// seedFor ends a seeder by itself should the test binary die without
	// running its cleanups.
	seedFor = "10m"
)

// testPage loads the library and nothing else, with elements for the
// prototype-style include calls.
const testPage = `<!doctype html><meta charset="utf-8"><title>p2pcdn e2e</title><link rel="icon" href="data:,">
<img id="img" alt=""><span id="dl">download</span>
<script src="/p2pcdn.js"></script>`

// testMediator is our Go mediator, in process, serving the web library, the
// demo page and testPage (at /test.html) on 127.0.0.1.
type testMediator struct {
	addr string // host:port
}

// url is the mediator's address as native peers are given it.
func (m *testMediator) url() string { return "ws://" + m.addr }

// page is the address of a page the mediator serves.
func (m *testMediator) page(path string) string { return "http://" + m.addr + path }

func startMediator(t testing.TB) *testMediator {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/test.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, testPage)
	})
	mux.Handle("/", web.Handler())
	lw := &testWriter{t: t}
	// Registered first, so it runs after the mediator has stopped logging.
	t.Cleanup(lw.close)
	srv := &mediator.Server{
		Fallback: mux,
		Logger:   slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	m := testpeer.Serve(t, srv)
	return &testMediator{addr: m.Addr}
}

// testWriter sends log lines to the test log until the test ends (testing
// panics on logging after completion).
type testWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log("mediator: " + strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testWriter) close() { w.mu.Lock(); w.closed = true; w.mu.Unlock() }

// proc is one running p2pcdn process, owned by the test that started it.
type proc = testenv.Proc

// start runs p2pcdn with args in a fresh temporary directory.
func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return testenv.StartProc(t, name, bin, "", args...)
}

// seeder is a `p2pcdn seed --json` process and the dictionaries it printed.
type seeder struct {
	*proc
	infos []*content.Info
	raw   map[string]string // file name -> the dictionary's JSON line
}

var seedingRE = regexp.MustCompile(`seeding \d+ file\(s\)`)

// startSeeder seeds paths through m and waits until every file is announced.
func startSeeder(t testing.TB, m *testMediator, paths ...string) *seeder {
	t.Helper()
	args := append([]string{"seed", "--json", "--no-cache", "--ice-loopback", "--mediator", m.url(), "--for", seedFor}, paths...)
	p := start(t, "seeder", args...)
	p.WaitOutput(seedingRE, startTimeout)
	s := &seeder{proc: p, raw: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(p.Stdout()))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		info, err := content.ParseInfo(sc.Bytes())
		if err != nil {
			t.Fatalf("seeder printed a bad info dictionary %q: %v", sc.Text(), err)
		}
		s.infos = append(s.infos, info)
		s.raw[info.FileName] = sc.Text()
	}
	return s
}

// info returns the dictionary of the seeded file named name.
func (s *seeder) info(name string) *content.Info {
	s.T().Helper()
	for _, in := range s.infos {
		if in.FileName == name {
			return in
		}
	}
	s.T().Fatalf("seeder does not serve %q (it serves %d files)", name, len(s.infos))
	return nil
}

// getSummary is what `p2pcdn get --json` prints.
type getSummary struct {
	FullHash    string `json:"full_hash"`
	FileName    string `json:"file_name"`
	Path        string `json:"path"`
	TotalLength int64  `json:"total_length"`
	Downloaded  int64  `json:"downloaded"`
	Peers       int    `json:"peers"`
}

// runGet runs `p2pcdn get --json -o outDir hash` to its end and returns its
// summary; it fails the test unless the download succeeded.
func runGet(t testing.TB, m *testMediator, outDir, hash string) *getSummary {
	t.Helper()
	p := start(t, "get", "get", "--json", "--ice-loopback", "--mediator", m.url(), "-o", outDir, hash)
	if code := p.Wait(runTimeout); code != 0 {
		t.Fatalf("p2pcdn get exited with %d; stderr:\n%s", code, p.Stderr())
	}
	var s getSummary
	if err := json.Unmarshal([]byte(p.Stdout()), &s); err != nil {
		t.Fatalf("get --json printed %q: %v", p.Stdout(), err)
	}
	return &s
}

// writeRandom writes size pseudo-random bytes to path and returns their
// SHA-256 in hex.
func writeRandom(t testing.TB, path string, size int64, seed uint64) string {
	return testenv.WriteRandom(t, path, size, seed)
}

func fileSHA256(t testing.TB, path string) string { return testenv.FileSHA256(t, path) }

// sha256JS defines sha256hex(blob) in a page: WebCrypto SHA-256 in hex.
const sha256JS = `const sha256hex = async (blob) => Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer())), (b) => b.toString(16).padStart(2, '0')).join('');`

// randomBlobJS defines randomBlob(n): n random bytes (getRandomValues fills
// at most 64 KiB per call).
const randomBlobJS = `const randomBlob = (n) => { const u = new Uint8Array(n); for (let i = 0; i < n; i += 65536) crypto.getRandomValues(u.subarray(i, Math.min(n, i + 65536))); return new Blob([u]); };`

func navigate(t testing.TB, tab context.Context, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigating to %s: %v", url, err)
	}
}

// eval runs JavaScript in the tab, awaiting a returned promise.
func eval[T any](t testing.TB, tab context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %.100q: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it is true.
func waitFor(t testing.TB, tab context.Context, what, cond string) {
	t.Helper()
	expr := fmt.Sprintf(`new Promise((resolve) => { const f = () => (%s) ? resolve(true) : setTimeout(f, 50); f(); })`, cond)
	ctx, cancel := context.WithTimeout(tab, stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// artifactDir is where screenshots go: $P2PCDN_ARTIFACTS when set, else a
// temporary directory that is logged.
func artifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("P2PCDN_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
		t.Logf("artifacts (set P2PCDN_ARTIFACTS to keep them): %s", dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

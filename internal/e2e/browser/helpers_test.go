package browser

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/mediator"
	"github.com/p2pcdn/p2pcdn/web"
)

// bin is the p2pcdn binary under test, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if b := os.Getenv("P2PCDN_E2E_BIN"); b != "" {
		bin = b
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "p2pcdn-e2e-browser-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e/browser:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "p2pcdn")
	gobin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e/browser: the go command is needed to build p2pcdn:", err)
		return 1
	}
	build := exec.Command(gobin, "build", "-o", bin, "github.com/p2pcdn/p2pcdn/cmd/p2pcdn")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e/browser: building p2pcdn: %v\n%s", err, out)
		return 1
	}
	return m.Run()
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
	srv := &mediator.Server{
		Fallback: mux,
		Logger:   slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mediator: %v", err)
		}
		lw.close()
	})
	return &testMediator{addr: ln.Addr().String()}
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

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is one running p2pcdn process, owned by the test that started it: a
// cleanup kills it unless it has exited.
type proc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	stdout lockedBuffer
	stderr lockedBuffer
	done   chan struct{}
	err    error // valid after done
}

// procEnv keeps the user's p2pcdn settings and hash cache out of the tests.
func procEnv(t testing.TB) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "P2PCDN_") || strings.HasPrefix(kv, "XDG_CACHE_HOME=") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		out = append(out, kv)
	}
	home := t.TempDir()
	return append(out, "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, "cache"))
}

func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = t.TempDir()
	p.cmd.Env = procEnv(t)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s (%s) stderr:\n%s", name, strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) kill() {
	if !p.exited() {
		p.cmd.Process.Kill()
		<-p.done
	}
}

// wait waits for the process to exit by itself and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		p.t.Fatalf("%s did not exit within %s; stderr:\n%s", p.name, timeout, p.stderr.String())
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	default:
		p.t.Fatalf("%s: %v", p.name, p.err)
		return -1
	}
}

// waitOutput waits until re matches the process's stderr; it fails the test
// if the process exits first.
func (p *proc) waitOutput(re *regexp.Regexp, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for re.FindStringIndex(p.stderr.String()) == nil {
		if p.exited() {
			p.t.Fatalf("%s exited (%v) before printing %q; stderr:\n%s", p.name, p.err, re, p.stderr.String())
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not print %q within %s; stderr:\n%s", p.name, re, timeout, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	p.waitOutput(seedingRE, startTimeout)
	s := &seeder{proc: p, raw: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(p.stdout.String()))
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
	s.t.Helper()
	for _, in := range s.infos {
		if in.FileName == name {
			return in
		}
	}
	s.t.Fatalf("seeder does not serve %q (it serves %d files)", name, len(s.infos))
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
	if code := p.wait(runTimeout); code != 0 {
		t.Fatalf("p2pcdn get exited with %d; stderr:\n%s", code, p.stderr.String())
	}
	var s getSummary
	if err := json.Unmarshal([]byte(p.stdout.String()), &s); err != nil {
		t.Fatalf("get --json printed %q: %v", p.stdout.String(), err)
	}
	return &s
}

// writeRandom writes size pseudo-random bytes to path, streaming, and
// returns their SHA-256 in hex.
func writeRandom(t testing.TB, path string, size int64, seed uint64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.NewChaCha8(key), size); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fileSHA256 is the SHA-256 of the file at path in hex, read streaming.
func fileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

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

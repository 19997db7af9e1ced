package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
	"github.com/p2pcdn/p2pcdn/internal/iceserver"
	"github.com/p2pcdn/p2pcdn/internal/mediator"
)

// testPage loads the library and nothing else, for tests of the library API.
const testPage = `<!doctype html><meta charset="utf-8"><title>p2pcdn test</title><link rel="icon" href="data:,">
<img id="img" alt=""><span id="dl">download</span>
<script src="/p2pcdn.js"></script>`

// testMediator is our Go mediator with the web handler (and the bare test
// page) mounted as its fallback, on 127.0.0.1. It can be restarted on the
// same address to test reconnection.
type testMediator struct {
	t      testing.TB
	addr   string
	lw     *lockedWriter
	cancel context.CancelFunc
	done   chan error
	opts   mediatorOpts
}

// mediatorOpts are the test mediator's settings beyond the defaults.
type mediatorOpts struct {
	// iceTTL > 0 serves STUN and TURN (internal/iceserver) on a UDP port of
	// 127.0.0.1, with credentials this long-lived; relays may reach
	// loopback, as on one host they must.
	iceTTL time.Duration
	// batch is mediator.Server.Batch (0: the default).
	batch int
}

func startMediator(t testing.TB) *testMediator {
	t.Helper()
	return startMediatorWith(t, mediatorOpts{})
}

func startMediatorWith(t testing.TB, opts mediatorOpts) *testMediator {
	t.Helper()
	m := &testMediator{t: t, addr: "127.0.0.1:0", lw: &lockedWriter{t: t}, opts: opts}
	m.start()
	t.Cleanup(func() {
		m.stop()
		m.lw.close()
	})
	return m
}

func (m *testMediator) URL() string { return "http://" + m.addr }

func (m *testMediator) start() {
	m.t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/test.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, testPage)
	})
	mux.Handle("/", Handler())
	srv := &mediator.Server{
		Batch:    m.opts.batch,
		Fallback: mux,
		Logger:   slog.New(slog.NewTextHandler(m.lw, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	ln, err := net.Listen("tcp", m.addr)
	if err != nil {
		m.t.Fatal(err)
	}
	m.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan error, 2)
	if m.opts.iceTTL > 0 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			m.t.Fatal(err)
		}
		ice, err := iceserver.New(iceserver.Config{PacketConn: pc, TURN: true, AllowLoopbackPeers: true, CredentialTTL: m.opts.iceTTL, Logger: srv.Logger})
		if err != nil {
			m.t.Fatal(err)
		}
		srv.ICE = ice
		go func() { m.done <- ice.Run(ctx) }()
	} else {
		m.done <- nil
	}
	go func() { m.done <- srv.Serve(ctx, ln) }()
}

func (m *testMediator) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	for range 2 {
		if err := <-m.done; err != nil {
			m.t.Errorf("mediator: %v", err)
		}
	}
	m.cancel = nil
}

// lockedWriter sends the mediator's log lines to the test log until the test ends.
type lockedWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log("mediator: " + strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *lockedWriter) close() { w.mu.Lock(); w.closed = true; w.mu.Unlock() }

// timeout bounds one browser step; generous because the machine is shared.
const timeout = 90 * time.Second

func navigate(t testing.TB, tab context.Context, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigating to %s: %v", url, err)
	}
}

// eval runs JavaScript in the tab, awaiting a returned promise.
func eval[T any](t testing.TB, tab context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %.80q: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it is true.
func waitFor(t testing.TB, tab context.Context, what, cond string) {
	t.Helper()
	expr := fmt.Sprintf(`new Promise((resolve) => { const f = () => (%s) ? resolve(true) : setTimeout(f, 100); f(); })`, cond)
	ctx, cancel := context.WithTimeout(tab, timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

type vector struct {
	Size               int    `json:"size"`
	FileName           string `json:"file_name"`
	InfoDictionaryJSON string `json:"info_dictionary_json"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "content", "prototype-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []vector }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	return f.Vectors
}

// genJS builds the vectors' content, byte[i] = (i*7+3) mod 256, in the page.
const genJS = `const gen = (n) => { const u = new Uint8Array(n); for (let i = 0; i < n; i++) u[i] = (i * 7 + 3) & 255; return u; };`

func TestHashMatchesPrototypeVectors(t *testing.T) {
	base := startMediator(t).URL()
	b := chromium.New(t)
	navigate(t, b.Tab(), base+"/test.html")
	for _, v := range loadVectors(t) {
		got := eval[string](t, b.Tab(), fmt.Sprintf(`(async () => { %s
			return JSON.stringify(await p2pcdn.hashBlob(new Blob([gen(%d)]), %q)); })()`, genJS, v.Size, v.FileName))
		if got != v.InfoDictionaryJSON {
			t.Errorf("size %d:\n got %s\nwant %s", v.Size, got, v.InfoDictionaryJSON)
		}
	}
	// The pure-JS SHA-1 used where crypto.subtle is missing (plain http on a
	// LAN address) must agree with WebCrypto.
	mismatch := eval[string](t, b.Tab(), `(async () => { `+genJS+`
		for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 200000]) {
			const u = gen(n);
			const a = new Uint8Array(await crypto.subtle.digest('SHA-1', u)), b = p2pcdn._sha1js(u);
			if (a.join() !== b.join()) return 'size ' + n;
		}
		return ''; })()`)
	if mismatch != "" {
		t.Errorf("pure-JS SHA-1 differs from WebCrypto at %s", mismatch)
	}
}

func TestCheckInfoRejectsTampering(t *testing.T) {
	base := startMediator(t).URL()
	b := chromium.New(t)
	navigate(t, b.Tab(), base+"/test.html")
	res := eval[[]string](t, b.Tab(), `(async () => { `+genJS+`
		const info = await p2pcdn.hashBlob(new Blob([gen(450000)]), "x.bin");
		const cases = {
			ok: info,
			piece: {...info, piece_hashes: [info.piece_hashes[0], info.piece_hashes[2], info.piece_hashes[1]]},
			amount: {...info, pieces_amount: 2},
			length: {...info, total_length: 9},
			hash: {...info, full_hash: "0".repeat(40)},
		};
		const out = [];
		for (const [k, v] of Object.entries(cases)) {
			try { await p2pcdn.checkInfo(v, info.full_hash); out.push(k + ":ok"); } catch (e) { out.push(k + ":" + e.message); }
		}
		return out; })()`)
	if len(res) != 5 || res[0] != "ok:ok" {
		t.Fatalf("checkInfo results: %q", res)
	}
	for _, r := range res[1:] {
		if !strings.Contains(r, "invalid info dictionary") {
			t.Errorf("tampered dictionary accepted or wrong error: %s", r)
		}
	}
}

// TestPageToPage: page A seeds a Blob, page B fetches it knowing only the
// hash (so the info dictionary comes from the seeder). A connects as
// socket.io-client does, long-polling first and then the upgrade to
// WebSocket; B with the default, WebSocket at once.
func TestPageToPage(t *testing.T) {
	base := startMediator(t).URL()
	b := chromium.New(t)
	a, c := b.Tab(), b.NewTab()
	navigate(t, a, base+"/test.html")
	navigate(t, c, base+"/test.html")

	const size = 1500000 // 8 pieces, the last one short
	hash := eval[string](t, a, `(async () => { `+genJS+`
		window.node = await p2pcdn.connect({iceServers: [], debug: true, transports: ["polling", "websocket"]});
		const blob = new Blob([gen(`+fmt.Sprint(size)+`)]);
		window.want = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()))).join();
		const info = await node.seed(blob, {name: "data.bin"});
		return info.full_hash; })()`)
	want := eval[string](t, a, `window.want`)

	got := eval[map[string]any](t, c, `(async () => {
		window.node = await p2pcdn.connect({iceServers: [], debug: true});
		let progress = 0;
		const blob = await node.fetch(`+fmt.Sprintf("%q", hash)+`, {onProgress: (p) => { progress++; }});
		const sum = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()))).join();
		return {sum, size: blob.size, progress, name: node.infoOf(`+fmt.Sprintf("%q", hash)+`).file_name};
	})()`)
	if got["sum"] != want {
		t.Fatalf("fetched bytes differ from the seeded ones (size %v)", got["size"])
	}
	if got["size"] != float64(size) || got["name"] != "data.bin" {
		t.Errorf("fetched size %v name %v, want %d data.bin", got["size"], got["name"], size)
	}
	if p, _ := got["progress"].(float64); p < 1 {
		t.Errorf("onProgress was never called")
	}
	// The seeder started with long-polling and upgraded to WebSocket; the
	// fetcher used WebSocket alone.
	waitFor(t, a, "seeder upgrade to websocket", `node.transport === "websocket"`)
	if h := eval[[]string](t, a, `node.transports`); len(h) < 2 || h[0] != "polling" || h[len(h)-1] != "websocket" {
		t.Errorf("seeder transports = %q, want polling then websocket", h)
	}
	if h := eval[[]string](t, c, `node.transports`); len(h) != 1 || h[0] != "websocket" {
		t.Errorf("fetcher transports = %q, want websocket alone (the default)", h)
	}
}

// TestWebSocketFallback: where WebSocket requests are refused (a proxy that
// does not pass them), the default connection falls back to long-polling at
// once and works; the pages fetch from each other through it.
func TestWebSocketFallback(t *testing.T) {
	m := startMediator(t)
	target, err := url.Parse(m.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	refused := 0
	var mu sync.Mutex
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			mu.Lock()
			refused++
			mu.Unlock()
			http.Error(w, "no websockets here", http.StatusBadRequest)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close) // after the browser's cleanup, which ends the pages' long-polls

	b := chromium.New(t)
	a, c := b.Tab(), b.NewTab()
	navigate(t, a, proxy.URL+"/test.html")
	navigate(t, c, proxy.URL+"/test.html")
	hash := eval[string](t, a, `(async () => { `+genJS+`
		window.node = await p2pcdn.connect({iceServers: []});
		return (await node.seed(new Blob([gen(300000)]), {name: "f.bin"})).full_hash; })()`)
	size := eval[int](t, c, fmt.Sprintf(`(async () => {
		window.node = await p2pcdn.connect({iceServers: []});
		return (await node.fetch(%q)).size; })()`, hash))
	if size != 300000 {
		t.Fatalf("fetched %d bytes through the long-polling fallback, want 300000", size)
	}
	for name, tab := range map[string]context.Context{"seeder": a, "fetcher": c} {
		if h := eval[[]string](t, tab, `node.transports`); len(h) < 2 || h[0] != "websocket" || h[1] != "polling" || eval[string](t, tab, `node.transport`) != "polling" {
			t.Errorf("%s transports = %q, want websocket, then polling for good", name, h)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if refused < 2 {
		t.Errorf("the proxy refused %d WebSocket requests; the pages never tried one", refused)
	}
}

func TestHandler(t *testing.T) {
	base := startMediator(t).URL()
	for path, want := range map[string]string{"/": "text/html", "/p2pcdn.js": "text/javascript"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || len(body) == 0 {
			t.Errorf("GET %s: %d %q %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		if path == "/p2pcdn.js" && len(body) > 88<<10 {
			t.Errorf("p2pcdn.js is %d bytes, budget is 88 KiB", len(body))
		}
		checkGzip(t, base+path, body)
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
		resp2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp2.Body.Close()
		if resp2.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", path, resp2.StatusCode)
		}
	}
	resp, err := http.Get(base + "/nope.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /nope.js: %d, want 404", resp.StatusCode)
	}
}

// checkGzip fetches url asking for gzip: the body must be gzip that
// decompresses to plain, within the budget on the wire, and 304 with its own
// ETag; a client that refuses gzip (q=0) gets the plain bytes.
func checkGzip(t *testing.T, url string, plain []byte) {
	t.Helper()
	get := func(ae, etag string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Accept-Encoding", ae) // set by hand, so the transport does not decompress
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, z := get("br, gzip;q=0.8", "")
	if resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("GET %s with gzip accepted: Content-Encoding %q, Vary %q", url, resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	unz, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unz, plain) {
		t.Errorf("GET %s: gzip body does not decompress to the plain one (%v)", url, err)
	}
	if strings.HasSuffix(url, ".js") && len(z) > 26<<10 {
		t.Errorf("p2pcdn.js is %d bytes gzipped, budget is 26 KiB", len(z))
	}
	t.Logf("%s: %d bytes, %d gzipped", url, len(plain), len(z))
	if r2, _ := get("gzip", resp.Header.Get("ETag")); r2.StatusCode != http.StatusNotModified {
		t.Errorf("GET %s gzip with its ETag: %d, want 304", url, r2.StatusCode)
	}
	if r3, b := get("gzip;q=0, identity", ""); r3.Header.Get("Content-Encoding") != "" || !bytes.Equal(b, plain) {
		t.Errorf("GET %s refusing gzip: Content-Encoding %q, %d bytes", url, r3.Header.Get("Content-Encoding"), len(b))
	}
}

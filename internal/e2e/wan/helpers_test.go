package wan

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/testenv"
	"github.com/p2pcdn/p2pcdn/internal/testing/netlab"
)

// bin is the p2pcdn binary under test, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithP2PCDN(m, "e2e/wan", &bin))
}

// Bounds against hangs, not measures of speed: the machine may be busy.
const (
	startTimeout = 60 * time.Second
	runTimeout   = 2 * time.Minute
	mediatorTCP  = "8888"
)

// rig is one lab set up for WAN transfers: the seeder, its mediator and an HTTP server of the same files
// on the public host "server", and the far host "far", whose link delays each packet by half the round
// trip both ways.
type rig struct {
	server, far *netlab.Host
	rtt         time.Duration
	mediator    string            // ws://server:8888
	httpBase    string            // http://server:PORT/ serving the seeded files
	hashes      map[string]string // file name → full hash
	sums        map[string]string // file name → SHA-256 hex of its bytes
	seeder      *testenv.Proc
}

// newRig builds the lab's hosts and starts the mediator, the seeder of files (name → size) and the HTTP
// server.
func newRig(t *testing.T, lab *netlab.Lab, rtt time.Duration, files map[string]int64) *rig {
	t.Helper()
	r := &rig{
		server: lab.PublicHost("server"),
		far:    lab.PublicHost("far", netlab.WithLink(netlab.Link{Delay: rtt / 2})),
		rtt:    rtt,
		hashes: map[string]string{},
		sums:   map[string]string{},
	}
	dir := t.TempDir()
	for name, size := range files {
		r.sums[name] = writeRandom(t, filepath.Join(dir, name), size)
	}
	r.mediator = startMediator(t, r.server)
	r.hashes, r.seeder = startSeeder(t, r.server, r.mediator, dir, len(files))
	r.httpBase = serveHTTP(t, r.server, dir)
	return r
}

var listeningRE = regexp.MustCompile(`mediator listening.* addr=(\S+)`)

// startMediator runs `p2pcdn mediator` with its defaults (STUN on, no DHT peers) on h and returns the
// URL peers are given.
func startMediator(t *testing.T, h *netlab.Host) string {
	t.Helper()
	addr := h.Addr.String() + ":" + mediatorTCP
	p := h.Start(t, "mediator", bin, "", "mediator", "--listen", addr)
	p.WaitOutput(listeningRE, startTimeout)
	return "ws://" + addr
}

var seedingRE = regexp.MustCompile(`seeding (\d+) file\(s\)`)

// startSeeder seeds dir's n files from h and returns their hashes by file name.
func startSeeder(t *testing.T, h *netlab.Host, med, dir string, n int) (map[string]string, *testenv.Proc) {
	t.Helper()
	p := h.Start(t, "seeder", bin, dir, "seed", "--json", "--no-cache", "--verbose", "--mediator", med, dir)
	if got, _ := strconv.Atoi(p.WaitOutput(seedingRE, startTimeout)[1]); got != n {
		t.Fatalf("seeder seeds %d files, want %d", got, n)
	}
	// stdout and stderr are copied apart: the dictionaries may still be on their way.
	deadline := time.Now().Add(startTimeout)
	for strings.Count(p.Stdout(), "\n") < n {
		if time.Now().After(deadline) {
			t.Fatalf("seeder announced %d files but printed %q", n, p.Stdout())
		}
		time.Sleep(10 * time.Millisecond)
	}
	hashes := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(p.Stdout()), "\n") {
		info, err := content.ParseInfo([]byte(line))
		if err != nil {
			t.Fatalf("seeder printed a bad info dictionary %q: %v", line, err)
		}
		hashes[info.FileName] = info.FullHash
	}
	return hashes, p
}

// serveHTTP serves dir over plain HTTP from h, as a CDN's origin would, and returns its base URL. Every
// response closes its connection, so each download (curl's or a page's) pays its own TCP handshake and
// slow start, as a first request to a new origin does; the bytes are never cached.
func serveHTTP(t *testing.T, h *netlab.Host, dir string) string {
	t.Helper()
	ln, err := h.Listen("tcp4", h.Addr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(dir))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Connection", "close")
		files.ServeHTTP(w, r)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return "http://" + ln.Addr().String() + "/"
}

// getRun is one finished `p2pcdn get`.
type getRun struct {
	took   time.Duration // whole process, start to exit
	sum    string        // SHA-256 of the file it wrote
	stderr string
}

// get runs `p2pcdn get --verbose` on the far host to its end and fails the test unless it exits 0.
func (r *rig) get(t *testing.T, hash string) getRun {
	t.Helper()
	dir := t.TempDir()
	start := time.Now()
	p := r.far.Start(t, "get", bin, dir, "get", "--json", "--verbose", "--timeout", "60s", "--mediator", r.mediator, "-o", "out.bin", hash)
	code := p.Wait(runTimeout)
	g := getRun{took: time.Since(start), stderr: p.Stderr()}
	if code != 0 {
		t.Fatalf("get %s exited %d; stderr:\n%s", hash, code, g.stderr)
	}
	g.sum = fileSHA256(t, filepath.Join(dir, "out.bin"))
	return g
}

// curl fetches name over HTTP with a curl process on the far host and returns how long the process
// took, start to exit, and the bytes' SHA-256.
func (r *rig) curl(t *testing.T, name string) (time.Duration, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.bin")
	start := time.Now()
	b, err := r.far.Command("curl", "--silent", "--show-error", "--fail", "--max-time", "60", "-o", out, r.httpBase+name).CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("curl %s: %v: %s", name, err, b)
	}
	return took, fileSHA256(t, out)
}

// writeRandom writes size random bytes to path and returns their SHA-256 in hex.
func writeRandom(t *testing.T, path string, size int64) string {
	return testenv.WriteRandom(t, path, size, rand.Uint64())
}

func fileSHA256(t *testing.T, path string) string { return testenv.FileSHA256(t, path) }

// browser is Chromium on the far host.
type browser struct {
	b      *chromium.Browser
	origin string // the mediator's http origin, where the pages live
}

func (r *rig) browser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromium.DefaultPath); err != nil && os.Getenv("P2PCDN_CHROMIUM") == "" {
		t.Skip("chromium is not installed")
	}
	return &browser{b: r.far.Chromium(t), origin: "http://" + strings.TrimPrefix(r.mediator, "ws://")}
}

// page is a fresh tab with the mediator's web library loaded and connected with its defaults (so the
// only ICE servers are the mediator's).
type page struct {
	tab   context.Context
	close context.CancelFunc
}

// openPage opens a fresh tab on the mediator's origin and connects the web library; close it with
// page.close.
func (b *browser) openPage(t *testing.T) *page {
	t.Helper()
	tab := b.b.NewTab()
	cancel := func() { _ = chromedp.Cancel(tab) }
	p := &page{tab: tab, close: cancel}
	ctx, stop := context.WithTimeout(tab, startTimeout)
	defer stop()
	// Any page of the mediator's origin will do; the library is added to it as a script.
	if err := chromedp.Do(ctx, chromedp.Navigate(b.origin+"/healthz")); err != nil {
		cancel()
		t.Fatalf("opening %s/healthz: %v", b.origin, err)
	}
	if os.Getenv("P2PCDN_WAN_DEBUG") != "" {
		p.eval(t, startTimeout, traceJS)
	}
	p.eval(t, startTimeout, `new Promise((resolve, reject) => {
		const s = document.createElement('script');
		s.src = '/p2pcdn.js';
		s.onload = () => resolve(true);
		s.onerror = () => reject(new Error('loading /p2pcdn.js failed'));
		document.head.appendChild(s); })`)
	p.eval(t, startTimeout, `p2pcdn.connect({debug: `+strconv.FormatBool(os.Getenv("P2PCDN_WAN_DEBUG") != "")+`}).then((n) => { window.node = n; return true; })`)
	return p
}

// eval runs JavaScript in the page, awaiting a returned promise, and returns its value as JSON text.
func (p *page) eval(t *testing.T, timeout time.Duration, expr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.tab, timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](`Promise.resolve(`+expr+`).then((v) => JSON.stringify(v))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %.80q: %v", expr, err)
	}
	s, _ := v.(string)
	return s
}

// b64JS defines blobToBase64(blob). The pages are plain http on a lab address, an insecure context
// without WebCrypto, so their bytes are checked in Go.
const b64JS = `const blobToBase64 = (blob) => new Promise((resolve, reject) => {
	const r = new FileReader();
	r.onload = () => resolve(r.result.slice(r.result.indexOf(',') + 1));
	r.onerror = () => reject(r.error);
	r.readAsDataURL(blob); });`

// timedBlob evaluates get, a JavaScript expression giving a promise of a Blob, timing it from the call to
// the blob, and returns how long it took and the bytes' SHA-256.
func (p *page) timedBlob(t *testing.T, get string) (time.Duration, string) {
	t.Helper()
	var res struct {
		Data  string // base64
		MS    float64
		Error string
	}
	out := p.eval(t, runTimeout, `(async () => { `+b64JS+`
		const t0 = performance.now();
		try {
			const blob = await (`+get+`);
			const ms = performance.now() - t0;
			return {Data: await blobToBase64(blob), MS: ms};
		} catch (e) { return {Error: String(e)}; } })()`)
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("page gave %s (%v)", out, err)
	}
	if res.Error != "" {
		t.Fatalf("page: %s: %s", get, res.Error)
	}
	data, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		t.Fatalf("page returned bad base64: %v", err)
	}
	digest := sha256.Sum256(data)
	return time.Duration(res.MS * float64(time.Millisecond)), hex.EncodeToString(digest[:])
}

// fetchHash times the page's p2pcdn fetch of hash, from the call to the blob.
func (p *page) fetchHash(t *testing.T, hash string) (time.Duration, string) {
	t.Helper()
	if os.Getenv("P2PCDN_WAN_DEBUG") != "" {
		p.eval(t, startTimeout, `(() => { if (window.trace) { window.trace = []; window.traceT0 = performance.now(); } return true; })()`)
		defer func() {
			t.Logf("page trace (ms since the fetch call): %s", p.eval(t, startTimeout, `window.trace || []`))
		}()
	}
	return p.timedBlob(t, `node.fetch(`+strconv.Quote(hash)+`, {timeout: 60000})`)
}

// fetchHTTP times the page's own fetch() of url, from the call to the blob.
func (p *page) fetchHTTP(t *testing.T, url string) (time.Duration, string) {
	t.Helper()
	return p.timedBlob(t, `fetch(`+strconv.Quote(url)+`, {cache: 'no-store'}).then((r) => {
		if (!r.ok) throw new Error('HTTP ' + r.status);
		return r.blob(); })`)
}

// traceJS, loaded before the library when P2PCDN_WAN_DEBUG is set, records when the page's mediator
// messages, peer connection states and data channel events happen (window.trace, ms since
// window.traceT0), to see where a fetch's round trips go.
const traceJS = `(() => {
	window.trace = []; window.traceT0 = performance.now();
	const note = (what) => { if (window.trace.length < 400) window.trace.push([Math.round(performance.now() - window.traceT0), what]); };
	const WS = window.WebSocket;
	window.WebSocket = class extends WS {
		constructor(...a) { super(...a); note('ws new');
			this.addEventListener('open', () => note('ws open'));
			this.addEventListener('message', (e) => note('ws in ' + String(e.data).slice(0, 48))); }
		send(d) { note('ws out ' + String(d).slice(0, 48)); return super.send(d); }
	};
	const PC = window.RTCPeerConnection;
	window.RTCPeerConnection = class extends PC {
		constructor(...a) { super(...a); note('pc new');
			this.addEventListener('iceconnectionstatechange', () => note('ice ' + this.iceConnectionState));
			this.addEventListener('connectionstatechange', () => note('pc ' + this.connectionState));
			this.addEventListener('icegatheringstatechange', () => note('gathering ' + this.iceGatheringState));
			this.addEventListener('datachannel', (e) => note('remote channel ' + e.channel.label)); }
		createDataChannel(...a) { const dc = super.createDataChannel(...a); note('channel created');
			dc.addEventListener('open', () => note('channel open'));
			let got = 0, mark = 0, msgs = 0; dc.addEventListener('message', (e) => {
				got += e.data.byteLength || e.data.length || 0;
				if (++msgs <= 6) note('message ' + msgs + ': ' + (e.data.byteLength || e.data.length || 0) + ' bytes');
				if (got >= mark) { note('received ' + got); mark = mark ? 2 * mark : 65536; } });
			const send = dc.send.bind(dc); let sent = 0;
			dc.send = (d) => { if (++sent <= 4) note('sent ' + (d.byteLength || d.length || 0) + ' bytes'); return send(d); };
			return dc; }
		setRemoteDescription(d) { note('remote ' + (d && d.type) + (/a=sctp-init/.test(d && d.sdp) ? ' (SNAP)' : '')); return super.setRemoteDescription(d); }
		setLocalDescription(d) { note('local ' + (d && d.type) + (/a=sctp-init/.test(d && d.sdp) ? ' (SNAP)' : '')); return super.setLocalDescription(d); }
	};
})()`

// udpDrops is how many UDP datagrams the far host dropped so far because a socket's receive buffer was
// full (RcvbufErrors in its /proc/net/snmp): a browser that does not read its socket fast enough.
func (r *rig) udpDrops(t *testing.T) int {
	t.Helper()
	out, err := r.far.Command("cat", "/proc/net/snmp").Output()
	if err != nil {
		t.Fatalf("reading the far host's UDP counters: %v", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.Atoi(f[i])
				return v
			}
		}
	}
	t.Fatalf("no RcvbufErrors in the far host's /proc/net/snmp")
	return 0
}

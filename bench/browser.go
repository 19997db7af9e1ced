package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcdn/p2pcdn/internal/chromium/launch"
)

// chrome is one headless Chromium for the browser rows.
type chrome struct {
	alloc, first context.Context
	cancel       []context.CancelFunc
	mu           sync.Mutex
	console      *os.File // the pages' console output
}

func (c *chrome) logf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.console != nil {
		fmt.Fprintf(c.console, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
	}
}

// browserFor starts Chromium on first use, with the loopback-only flags the
// browser tests use too.
func (b *bench) browserFor(ctx context.Context) (*chrome, error) {
	if b.browser != nil {
		return b.browser, nil
	}
	path := launch.Path(launch.DefaultPath)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("chromium not found at %s: install it with `apt-get install chromium` or set P2PCDN_CHROMIUM", path)
	}
	flags := launch.AllocatorOptions(path, filepath.Join(b.work, "chromium"))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), flags...)
	first, cancelFirst := chromedp.NewContext(alloc)
	console, err := os.Create(filepath.Join(b.work, "chromium-console.log"))
	if err != nil {
		cancelFirst()
		cancelAlloc()
		return nil, err
	}
	c := &chrome{alloc: alloc, first: first, cancel: []context.CancelFunc{cancelAlloc, cancelFirst}, console: console}
	// The first Run binds the browser's life to its context, so it gets the
	// untimed one; a timer closes the browser if the start hangs.
	hung := time.AfterFunc(90*time.Second, cancelFirst)
	err = chromedp.Do(first)
	hung.Stop()
	if err != nil {
		c.close()
		return nil, fmt.Errorf("starting chromium %s: %w", path, err)
	}
	startCtx, cancel := context.WithTimeout(first, 90*time.Second)
	defer cancel()
	if err := launch.GrantCapturePermissions(startCtx); err != nil {
		c.close()
		return nil, fmt.Errorf("starting chromium %s: %w", path, err)
	}
	b.browser = c
	return c, nil
}

func (c *chrome) close() {
	for i := len(c.cancel) - 1; i >= 0; i-- {
		c.cancel[i]()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.console.Close()
	c.console = nil
}

// tab opens a tab on url; the returned function closes it.
func (c *chrome) tab(ctx context.Context, url string) (context.Context, func(), error) {
	tab, cancel := chromedp.NewContext(c.first)
	// The page's console goes to a log file, for a look when a row fails.
	msgs := chromedp.Console(tab)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		for m, err := range msgs {
			if err != nil {
				return
			}
			c.logf("%s console.%s: %s", url, m.Type, m.Text)
		}
	}()
	closeTab := func() { chromedp.Cancel(tab); cancel(); <-copied }
	nctx, ncancel := context.WithTimeout(tab, time.Minute)
	defer ncancel()
	if _, err := chromedp.Run(nctx, chromedp.Navigate(url)); err != nil {
		closeTab()
		return nil, nil, fmt.Errorf("open %s: %w", url, err)
	}
	return tab, closeTab, nil
}

// eval runs an expression (awaiting a promise) in tab, bounded by a timeout.
func eval[T any](ctx, tab context.Context, timeout time.Duration, expr string) (T, error) {
	tctx, cancel := context.WithTimeout(tab, timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return v, fmt.Errorf("in the page: %w", err)
	}
	return v, nil
}

// timing is what the page scripts return.
type timing struct {
	MS   float64 `json:"ms"`
	Size int64   `json:"size"`
}

func (t timing) check(want int64) error {
	if t.Size != want {
		return fmt.Errorf("the page got %d bytes, want %d", t.Size, want)
	}
	return nil
}

// pageOnce opens a fresh tab, runs one timed script and closes the tab, so
// every run starts cold (no connections or peers left from the last one).
func (b *bench) pageOnce(ctx context.Context, c *chrome, expr string, want int64, timeout time.Duration) (float64, error) {
	tab, closeTab, err := c.tab(ctx, b.webURL+"/bench.html")
	if err != nil {
		return 0, err
	}
	defer closeTab()
	t, err := eval[timing](ctx, tab, timeout, expr)
	if err != nil {
		return 0, err
	}
	return t.MS, t.check(want)
}

func httpFetchJS(url string) string {
	return fmt.Sprintf(`(async () => {
		const t0 = performance.now();
		const r = await fetch(%q, {cache: "no-store"});
		const b = await r.arrayBuffer();
		return {ms: performance.now() - t0, size: b.byteLength};
	})()`, url)
}

// p2pFetchJS connects to the mediator and fetches by hash; the time includes
// the mediator connection, as a page's first fetch does.
func p2pFetchJS(mediator, hash string) string {
	return fmt.Sprintf(`(async () => {
		const t0 = performance.now();
		const node = await p2pcdn.connect({mediator: %q, iceServers: []});
		const blob = await node.fetch(%q);
		const ms = performance.now() - t0;
		node.close();
		return {ms, size: blob.size};
	})()`, mediator, hash)
}

// p2pSeedJS makes the page a seeder of a file it downloads from the bench's
// web server, and returns the file's hash.
func p2pSeedJS(mediator, url, name string) string {
	return fmt.Sprintf(`(async () => {
		const buf = await (await fetch(%q)).arrayBuffer();
		window.node = window.node || await p2pcdn.connect({mediator: %q, iceServers: []});
		return (await node.seed(new Blob([buf]), {name: %q})).full_hash;
	})()`, url, mediator, name)
}

// rawRecvJS answers a pion offer and counts the bytes of the first data
// channel; window.rawDone resolves to the time from the channel's arrival to
// the last byte.
const rawRecvJS = `window.rawRecv = async (sdp, size) => {
	const pc = new RTCPeerConnection({iceServers: []});
	window.rawPC = pc;
	window.rawDone = new Promise((resolve) => {
		pc.ondatachannel = (e) => {
			const ch = e.channel, t0 = performance.now();
			let n = 0;
			ch.binaryType = "arraybuffer";
			ch.onmessage = (m) => { n += m.data.byteLength; if (n >= size) resolve({ms: performance.now() - t0, size: n}); };
		};
	});
	await pc.setRemoteDescription({type: "offer", sdp});
	await pc.setLocalDescription(await pc.createAnswer());
	if (pc.iceGatheringState !== "complete") {
		await new Promise((r) => pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r()));
	}
	return pc.localDescription.sdp;
}; true`

// rawSendJS is the sending half of the raw tab-to-tab baseline: rawOffer
// returns a complete offer, rawSend takes the answer and sends size bytes in
// 64 KiB messages with the same flow control as send.
const rawSendJS = `window.rawOffer = async () => {
	const pc = new RTCPeerConnection({iceServers: []});
	window.rawPC = pc;
	window.rawDC = pc.createDataChannel("raw");
	await pc.setLocalDescription();
	if (pc.iceGatheringState !== "complete") {
		await new Promise((r) => pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r()));
	}
	return pc.localDescription.sdp;
};
window.rawSend = async (sdp, size) => {
	const dc = rawDC;
	const open = dc.readyState === "open" ? Promise.resolve() : new Promise((r) => dc.onopen = r);
	await rawPC.setRemoteDescription({type: "answer", sdp});
	await open;
	dc.bufferedAmountLowThreshold = 512 << 10;
	const chunk = new Uint8Array(65536);
	for (let sent = 0; sent < size; sent += chunk.length) {
		if (dc.bufferedAmount > 1 << 20) await new Promise((r) => dc.onbufferedamountlow = r);
		dc.send(sent + chunk.length <= size ? chunk : chunk.subarray(0, size - sent));
	}
	return true;
}; true`

// rawTabToTab sends size bytes over one bare RTCDataChannel from one fresh
// tab to another: the browser's own data-channel speed between two renderer
// processes, the baseline for page-to-page transfers. It returns the
// receiving page's time from the channel's arrival to the last byte, in ms.
func (b *bench) rawTabToTab(ctx context.Context, c *chrome, size int64) (float64, error) {
	tx, closeTx, err := c.tab(ctx, b.webURL+"/bench.html")
	if err != nil {
		return 0, err
	}
	defer closeTx()
	rx, closeRx, err := c.tab(ctx, b.webURL+"/bench.html")
	if err != nil {
		return 0, err
	}
	defer closeRx()
	if _, err := eval[bool](ctx, tx, time.Minute, rawSendJS); err != nil {
		return 0, err
	}
	if _, err := eval[bool](ctx, rx, time.Minute, rawRecvJS); err != nil {
		return 0, err
	}
	o, err := eval[string](ctx, tx, time.Minute, `rawOffer()`)
	if err != nil {
		return 0, err
	}
	a, err := eval[string](ctx, rx, time.Minute, fmt.Sprintf(`rawRecv(%q, %d)`, loopbackOnly(o), size))
	if err != nil {
		return 0, err
	}
	if _, err := eval[bool](ctx, tx, 5*time.Minute, fmt.Sprintf(`rawSend(%q, %d)`, loopbackOnly(a), size)); err != nil {
		return 0, err
	}
	t, err := eval[timing](ctx, rx, 5*time.Minute, `rawDone`)
	if err != nil {
		return 0, err
	}
	return t.MS, t.check(size)
}

// rawToPage sends size bytes from a plain pion peer connection in this
// process to a fresh Chromium tab over one data channel and returns the
// page's time from the channel's arrival to the last byte, in ms.
func (b *bench) rawToPage(ctx context.Context, c *chrome, size int64) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	tab, closeTab, err := c.tab(ctx, b.webURL+"/bench.html")
	if err != nil {
		return 0, err
	}
	defer closeTab()
	if _, err := eval[bool](ctx, tab, time.Minute, rawRecvJS); err != nil {
		return 0, err
	}
	pc, err := rawAPI().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return 0, err
	}
	defer pc.Close()
	dc, err := pc.CreateDataChannel("raw", nil)
	if err != nil {
		return 0, err
	}
	opened := make(chan struct{})
	dc.OnOpen(func() { close(opened) })
	o, err := offer(ctx, pc)
	if err != nil {
		return 0, err
	}
	answer, err := eval[string](ctx, tab, time.Minute, fmt.Sprintf(`rawRecv(%q, %d)`, o.SDP, size))
	if err != nil {
		return 0, err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return 0, fmt.Errorf("the page's answer: %w", err)
	}
	select {
	case <-opened:
	case <-ctx.Done():
		return 0, errors.New("raw pion → page: the data channel did not open")
	}
	if err := send(ctx, dc, size); err != nil {
		return 0, err
	}
	t, err := eval[timing](ctx, tab, 5*time.Minute, `rawDone`)
	if err != nil {
		return 0, err
	}
	return t.MS, t.check(size)
}

// browserRows: a page fetching from `p2pcdn seed` (one file, and 24 assets),
// and from another page.
func (b *bench) browserRows(ctx context.Context) ([]row, error) {
	const title = "Browser (headless Chromium)"
	c, err := b.browserFor(ctx)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.work, "files", "web")
	small, big := int64(1e6), b.sz.browserBig
	if _, err := b.makeFile(dir, "small.bin", small, 41); err != nil {
		return nil, err
	}
	if _, err := b.makeFile(dir, "big.bin", big, 42); err != nil {
		return nil, err
	}
	med, _, err := b.startMediator(ctx)
	if err != nil {
		return nil, err
	}
	seed, hashes, err := b.startSeed(ctx, med, dir, 2)
	if err != nil {
		return nil, err
	}
	lat := row{group: title, name: "page fetches 1 MB from p2pcdn seed (connect + fetch)", unit: unitMS,
		baseName: "page fetch() of the same file from a local net/http server"}
	for i := range b.sz.runs {
		if i == 0 { // untimed warm-up: the first page load compiles p2pcdn.js
			if _, err := b.pageOnce(ctx, c, p2pFetchJS(med, hashes["small.bin"]), small, 2*time.Minute); err != nil {
				return nil, err
			}
		}
		v, err := b.pageOnce(ctx, c, p2pFetchJS(med, hashes["small.bin"]), small, 2*time.Minute)
		if err != nil {
			return nil, err
		}
		h, err := b.pageOnce(ctx, c, httpFetchJS(b.webURL+"/files/web/small.bin"), small, time.Minute)
		if err != nil {
			return nil, err
		}
		lat.got, lat.base = append(lat.got, v), append(lat.base, h)
	}
	b.httpMS1MB = lat.base
	tp := row{group: title, name: fmt.Sprintf("page fetches %s from p2pcdn seed", sizeName(big)), unit: unitMiBs,
		baseName: "raw pion data channel → page, same bytes"}
	// With --before, also from a seeder of that build on a mediator of its own.
	var prevMed, prevHash string
	var prevSeed *daemon
	if b.before != "" {
		if prevMed, _, err = b.startMediator(ctx); err != nil {
			return nil, err
		}
		var hs map[string]string
		if prevSeed, hs, err = b.startSeedWith(ctx, b.before, prevMed, dir, 2); err != nil {
			return nil, fmt.Errorf("--before build: %w", err)
		}
		prevHash = hs["big.bin"]
	}
	var prevTP []float64
	for range b.sz.bigRuns {
		v, err := b.pageOnce(ctx, c, p2pFetchJS(med, hashes["big.bin"]), big, 5*time.Minute)
		if err != nil {
			return nil, err
		}
		r, err := b.rawToPage(ctx, c, big)
		if err != nil {
			return nil, err
		}
		tp.got, tp.base = append(tp.got, mibps(big, msDur(v))), append(tp.base, mibps(big, msDur(r)))
		if prevSeed != nil {
			v, err := b.pageOnce(ctx, c, p2pFetchJS(prevMed, prevHash), big, 5*time.Minute)
			if err != nil {
				return nil, fmt.Errorf("--before build: %w", err)
			}
			prevTP = append(prevTP, mibps(big, msDur(v)))
		}
	}
	b.rawPageMiBs = tp.base
	seed.stop()
	var beforeRows []row
	if prevSeed != nil {
		prevSeed.stop()
		beforeRows = append(beforeRows, row{group: title,
			name: fmt.Sprintf("page fetches %s from p2pcdn seed of this build", sizeName(big)), unit: unitMiBs, got: tp.got,
			baseName: fmt.Sprintf("the same from a seeder of the --before build (%s), interleaved", filepath.Base(b.before)), base: prevTP})
	}
	assets, err := b.assetRows(ctx, c, med, title)
	if err != nil {
		return nil, err
	}

	// Page to page, on a fresh mediator so the Go seeder cannot take part.
	med2, _, err := b.startMediator(ctx)
	if err != nil {
		return nil, err
	}
	seeder, closeSeeder, err := c.tab(ctx, b.webURL+"/bench.html")
	if err != nil {
		return nil, err
	}
	defer closeSeeder()
	hs, err := eval[string](ctx, seeder, 2*time.Minute, p2pSeedJS(med2, b.webURL+"/files/web/small.bin", "small.bin"))
	if err != nil {
		return nil, fmt.Errorf("page seeding: %w", err)
	}
	hb, err := eval[string](ctx, seeder, 5*time.Minute, p2pSeedJS(med2, b.webURL+"/files/web/big.bin", "big.bin"))
	if err != nil {
		return nil, fmt.Errorf("page seeding: %w", err)
	}
	lat2 := row{group: title, name: "page fetches 1 MB from another page (connect + fetch)", unit: unitMS,
		baseName: "page fetch() from net/http (row above)", base: lat.base}
	for range b.sz.runs {
		v, err := b.pageOnce(ctx, c, p2pFetchJS(med2, hs), small, 2*time.Minute)
		if err != nil {
			return nil, err
		}
		lat2.got = append(lat2.got, v)
	}
	tp2 := row{group: title, name: fmt.Sprintf("page fetches %s from another page", sizeName(big)), unit: unitMiBs,
		baseName: "raw RTCDataChannel from one tab to another, same bytes"}
	for range b.sz.bigRuns {
		v, err := b.pageOnce(ctx, c, p2pFetchJS(med2, hb), big, 5*time.Minute)
		if err != nil {
			return nil, err
		}
		r, err := b.rawTabToTab(ctx, c, big)
		if err != nil {
			return nil, err
		}
		tp2.got, tp2.base = append(tp2.got, mibps(big, msDur(v))), append(tp2.base, mibps(big, msDur(r)))
	}
	b.pageToPage1MB, b.pageToPageMiBs = lat2.got, tp2.got
	return append(append(append([]row{lat, tp}, assets...), lat2, tp2), beforeRows...), nil
}

func msDur(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// loopbackOnly drops every ICE candidate of an SDP except those on
// 127.0.0.1, so the raw tab-to-tab baseline stays on loopback even on a
// machine with other interfaces.
func loopbackOnly(sdp string) string {
	lines := strings.SplitAfter(sdp, "\n")
	kept := lines[:0]
	for _, l := range lines {
		if strings.HasPrefix(l, "a=candidate:") && !strings.Contains(l, " 127.0.0.1 ") {
			continue
		}
		kept = append(kept, l)
	}
	return strings.Join(kept, "")
}

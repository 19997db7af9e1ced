package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"time"
)

// assetCount and assetSize describe the page-assets row: 24 files of
// 20–300 KB, 3 MB together, as a page of a real site shows.
const assetCount = 24

func assetSize(i int) int64 {
	r := float64((i*7)%assetCount) / float64(assetCount-1)
	return 20000 + int64(math.Round(280000*math.Pow(r, 1.6)))
}

// assetTiming is what the asset page scripts return.
type assetTiming struct {
	timing
	PCs int `json:"pcs"`
}

// p2pAssetsJS connects to the mediator and fetches every hash at once,
// counting the page's peer connections that connected (RTCPeerConnection
// wrapped).
func p2pAssetsJS(mediator string, hashes []string) string {
	hs, _ := json.Marshal(hashes)
	return fmt.Sprintf(`(async () => {
		let pcs = 0; const PC = window.RTCPeerConnection;
		window.RTCPeerConnection = function (...a) { const pc = new PC(...a);
			pc.addEventListener("connectionstatechange", () => { if (pc.connectionState === "connected") pcs++; }); return pc; };
		window.RTCPeerConnection.prototype = PC.prototype;
		const t0 = performance.now();
		const node = await p2pcdn.connect({mediator: %q, iceServers: []});
		const blobs = await Promise.all(%s.map((h) => node.fetch(h)));
		const ms = performance.now() - t0;
		node.close();
		return {ms, size: blobs.reduce((n, b) => n + b.size, 0), pcs};
	})()`, mediator, hs)
}

// httpAssetsJS fetches every URL at once, as a page loads its assets.
func httpAssetsJS(urls []string) string {
	us, _ := json.Marshal(urls)
	return fmt.Sprintf(`(async () => {
		const t0 = performance.now();
		const bufs = await Promise.all(%s.map(async (u) => (await fetch(u, {cache: "no-store"})).arrayBuffer()));
		return {ms: performance.now() - t0, size: bufs.reduce((n, b) => n + b.byteLength, 0), pcs: 0};
	})()`, us)
}

// assetPage runs one asset script in a fresh tab.
func (b *bench) assetPage(ctx context.Context, c *chrome, expr string, want int64) (assetTiming, error) {
	tab, closeTab, err := c.tab(ctx, b.webURL+"/bench.html")
	if err != nil {
		return assetTiming{}, err
	}
	defer closeTab()
	t, err := eval[assetTiming](ctx, tab, 2*time.Minute, expr)
	if err != nil {
		return t, err
	}
	return t, t.check(want)
}

// assetRows: a page fetches 24 assets from one `p2pcdn seed` by hash
// (mediator connection included, as on a page's first load), against the
// same page fetching the same files from the local HTTP/1.1 server, and
// against the transport's floor: as many bytes sent by plain pion over one
// open data channel to a page. All three interleaved run by run. The note
// lists the peer connections each page load opened.
func (b *bench) assetRows(ctx context.Context, c *chrome, mediator, title string) ([]row, error) {
	r := row{group: title, name: fmt.Sprintf("page fetches %d assets (20–300 KB, 3 MB) from one p2pcdn seed (connect + fetch)", assetCount),
		unit: unitMS, baseName: "the same page fetching the same files from a local HTTP/1.1 server (net/http), all at once"}
	floor := row{group: title, name: "the same 24-asset page load (row above)", unit: unitMS,
		baseName: "the same bytes over one open data channel, raw pion → page (no setup): the transport's floor"}
	dir := filepath.Join(b.work, "files", "assets")
	var total int64
	names := make([]string, assetCount)
	for i := range assetCount {
		names[i] = fmt.Sprintf("asset%02d.bin", i)
		if _, err := b.makeFile(dir, names[i], assetSize(i), uint64(100+i)); err != nil {
			return nil, err
		}
		total += assetSize(i)
	}
	seed, hashes, err := b.startSeed(ctx, mediator, dir, assetCount)
	if err != nil {
		return nil, err
	}
	defer seed.stop()
	hs, urls := make([]string, assetCount), make([]string, assetCount)
	for i, n := range names {
		hs[i], urls[i] = hashes[n], b.webURL+"/files/assets/"+n
	}
	var pcs []int
	for i := range b.sz.runs + 1 {
		p, err := b.assetPage(ctx, c, p2pAssetsJS(mediator, hs), total)
		if err != nil {
			return nil, fmt.Errorf("page fetching assets from p2pcdn seed: %w", err)
		}
		h, err := b.assetPage(ctx, c, httpAssetsJS(urls), total)
		if err != nil {
			return nil, fmt.Errorf("page fetching assets over HTTP: %w", err)
		}
		raw, err := b.rawToPage(ctx, c, total)
		if err != nil {
			return nil, err
		}
		if i == 0 { // untimed warm-up: script compilation, the seeder's first reads
			continue
		}
		r.got, r.base = append(r.got, p.MS), append(r.base, h.MS)
		floor.base = append(floor.base, raw)
		pcs = append(pcs, p.PCs)
	}
	r.note = fmt.Sprintf("peer connections per page load: %v", pcs)
	floor.got = r.got
	return []row{r, floor}, nil
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// wtClientOptions keep WebTorrent on loopback: no DHT, no local service
// discovery, no uTP, no web seeds, no STUN; only the tracker each torrent
// names (the bench's own) is contacted.
const wtClientOptions = `{dht: false, lsd: false, utp: false, natUpnp: false, natPmp: false, webSeeds: false, tracker: {rtcConfig: {iceServers: []}}}`

// wtMemStoreJS defines a minimal in-memory chunk store (the
// abstract-chunk-store interface). WebTorrent's default browser store is the
// origin-private file system, keyed by torrent name and info hash and shared
// by every tab of the origin: a downloading tab would find the seeder's
// pieces there and finish without the network. Both sides keep pieces in
// memory instead, as p2pcdn's pages do.
const wtMemStoreJS = `window.WTMemStore = window.WTMemStore || class {
	constructor(chunkLength, opts = {}) { this.chunkLength = Number(chunkLength); this.chunks = []; this.closed = false; }
	put(i, buf, cb = () => {}) { this.chunks[i] = buf; queueMicrotask(() => cb(null)); }
	get(i, opts, cb = () => {}) {
		if (typeof opts === "function") { cb = opts; opts = null; }
		const buf = this.chunks[i];
		if (!buf) { const e = new Error("Chunk not found"); e.notFound = true; queueMicrotask(() => cb(e)); return; }
		const off = (opts && opts.offset) || 0, len = (opts && opts.length) || buf.length - off;
		queueMicrotask(() => cb(null, off === 0 && len === buf.length ? buf : buf.slice(off, off + len)));
	}
	close(cb = () => {}) { this.closed = true; queueMicrotask(() => cb(null)); }
	destroy(cb = () => {}) { this.chunks = []; this.close(cb); }
};`

// wtSeedJS makes the page a WebTorrent seeder of a file it downloads from
// the bench's web server, and returns the magnet URI.
func wtSeedJS(tracker, url, name string) string {
	return fmt.Sprintf(`(async () => {
		%s
		const {default: WebTorrent} = await import("/wt/webtorrent.min.js");
		window.wt = window.wt || new WebTorrent(%s);
		const buf = await (await fetch(%q)).arrayBuffer();
		const file = new File([buf], %q);
		return await new Promise((resolve, reject) => {
			wt.on("error", (e) => reject(String(e)));
			wt.seed(file, {announce: [%q], name: %q, store: WTMemStore}, (t) => resolve(t.magnetURI));
		});
	})()`, wtMemStoreJS, wtClientOptions, url, name, tracker, name)
}

// wtFetchJS creates a client and downloads a magnet URI; the time includes
// the client's tracker connection, as p2pFetchJS includes the mediator's.
func wtFetchJS(tracker, magnet string) string {
	return fmt.Sprintf(`(async () => {
		%s
		const {default: WebTorrent} = await import("/wt/webtorrent.min.js");
		const t0 = performance.now();
		const c = new WebTorrent(%s);
		const r = await new Promise((resolve, reject) => {
			c.on("error", (e) => reject(String(e)));
			c.add(%q, {announce: [%q], store: WTMemStore}, (t) => {
				const fin = () => resolve({ms: performance.now() - t0, size: Math.min(t.downloaded, t.received)});
				if (t.done) fin(); else t.on("done", fin);
			});
		});
		await new Promise((resolve) => c.destroy(resolve));
		return r;
	})()`, wtMemStoreJS, wtClientOptions, magnet, tracker)
}

// webtorrentRows runs WebTorrent's browser bundle (from the npm package) in
// headless Chromium: one tab seeds, a fresh tab per run downloads, peers
// meet on a bittorrent-tracker WebSocket server on 127.0.0.1.
func (b *bench) webtorrentRows(ctx context.Context) ([]row, error) {
	const title = "Competitor: WebTorrent (headless Chromium)"
	dir := filepath.Join(b.root, "bench", "webtorrent")
	if err := b.npmInstall(ctx, dir); err != nil {
		return nil, err
	}
	c, err := b.browserFor(ctx)
	if err != nil {
		return nil, err
	}
	files := filepath.Join(b.work, "files", "wt")
	small, big := int64(1e6), b.sz.browserBig
	if _, err := b.makeFile(files, "small.bin", small, 51); err != nil {
		return nil, err
	}
	if _, err := b.makeFile(files, "big.bin", big, 52); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	tracker := fmt.Sprintf("ws://127.0.0.1:%d", port)
	if _, _, err := b.startDaemon(ctx, func(l string) bool { return strings.HasPrefix(l, "listening") },
		"node", filepath.Join(dir, "server.js"), fmt.Sprint(port)); err != nil {
		return nil, fmt.Errorf("bittorrent-tracker: %w", err)
	}
	seeder, closeSeeder, err := c.tab(ctx, b.webURL+"/bench.html")
	if err != nil {
		return nil, err
	}
	defer closeSeeder()
	ms, err := eval[string](ctx, seeder, 2*time.Minute, wtSeedJS(tracker, b.webURL+"/files/wt/small.bin", "small.bin"))
	if err != nil {
		return nil, fmt.Errorf("webtorrent seeding: %w", err)
	}
	mb, err := eval[string](ctx, seeder, 5*time.Minute, wtSeedJS(tracker, b.webURL+"/files/wt/big.bin", "big.bin"))
	if err != nil {
		return nil, fmt.Errorf("webtorrent seeding: %w", err)
	}

	lat := row{group: title, name: "page fetches 1 MB from another page (client start + fetch)", unit: unitMS,
		baseName: "page fetch() of the same file from a local net/http server"}
	for i := range b.sz.runs {
		if i == 0 { // untimed warm-up: the first import compiles the bundle
			if _, err := b.pageOnce(ctx, c, wtFetchJS(tracker, ms), small, 2*time.Minute); err != nil {
				return nil, err
			}
		}
		v, err := b.pageOnce(ctx, c, wtFetchJS(tracker, ms), small, 2*time.Minute)
		if err != nil {
			return nil, err
		}
		h, err := b.pageOnce(ctx, c, httpFetchJS(b.webURL+"/files/wt/small.bin"), small, time.Minute)
		if err != nil {
			return nil, err
		}
		lat.got, lat.base = append(lat.got, v), append(lat.base, h)
	}
	tp := row{group: title, name: fmt.Sprintf("page fetches %s from another page", sizeName(big)), unit: unitMiBs,
		baseName: "raw RTCDataChannel from one tab to another, same bytes"}
	for range b.sz.bigRuns {
		v, err := b.pageOnce(ctx, c, wtFetchJS(tracker, mb), big, 5*time.Minute)
		if err != nil {
			return nil, err
		}
		r, err := b.rawTabToTab(ctx, c, big)
		if err != nil {
			return nil, err
		}
		tp.got, tp.base = append(tp.got, mibps(big, msDur(v))), append(tp.base, mibps(big, msDur(r)))
	}
	rows := []row{lat, tp}
	// Head to head with p2pcdn's page-to-page rows of the browser group.
	if len(b.pageToPage1MB) > 0 {
		rows = append(rows,
			row{group: title, name: "p2pcdn page → page 1 MB (connect + fetch)", unit: unitMS, got: b.pageToPage1MB,
				baseName: "WebTorrent page → page 1 MB (client start + fetch)", base: lat.got},
			row{group: title, name: fmt.Sprintf("p2pcdn page → page %s", sizeName(big)), unit: unitMiBs, got: b.pageToPageMiBs,
				baseName: fmt.Sprintf("WebTorrent page → page %s", sizeName(big)), base: tp.got})
	}
	rows = append(rows, row{group: title, name: "WebTorrent in Node (whole-process rows)",
		note: "not measured: webtorrent's Node WebRTC (node-datachannel) downloads a prebuilt binary from outside the npm registry"})
	return rows, nil
}

// npmInstall installs bench/webtorrent's locked dependencies once. Install
// scripts are skipped: the only one fetches node-datachannel's native binary
// from outside the npm registry, and the tracker server does not need it.
func (b *bench) npmInstall(ctx context.Context, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "webtorrent", "dist", "webtorrent.min.js")); err == nil {
		return nil
	}
	b.log.Info("npm ci", "dir", dir)
	cmd := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %w: %s", dir, err, lastLine(string(out)))
	}
	return nil
}

package web

import (
	"context"
	"fmt"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// TestReconnectReannounces restarts the mediator under a seeding page: the
// page must reconnect, hand shake and announce again, so a new page can
// still find it.
func TestReconnectReannounces(t *testing.T) {
	m := startMediator(t)
	b := chromium.New(t)
	a := b.Tab()
	navigate(t, a, m.URL()+"/test.html")
	hash := eval[string](t, a, `(async () => { `+genJS+`
		window.node = await p2pcdn.connect({iceServers: [], debug: true});
		window.established = 0; node.on("established", () => window.established++);
		return (await node.seed(new Blob([gen(300000)]), {name: "r.bin"})).full_hash; })()`)

	m.stop()
	m.start()
	waitFor(t, a, "the seeder to reconnect", `window.established >= 1`)

	c := b.NewTab()
	navigate(t, c, m.URL()+"/test.html")
	size := eval[int](t, c, fmt.Sprintf(`(async () => {
		window.node = await p2pcdn.connect({iceServers: [], debug: true, transports: ["websocket"]});
		return (await node.fetch(%q)).size; })()`, hash))
	if size != 300000 {
		t.Fatalf("fetched %d bytes after the mediator restart, want 300000", size)
	}
	if h := eval[[]string](t, c, `node.transports`); len(h) != 1 || h[0] != "websocket" {
		t.Errorf("transports [websocket] used %q", h)
	}
}

// TestBadSeederIsBanned: a lying seeder serves other bytes under a file's
// hash. The fetcher must reject its pieces, ban it, and complete from an
// honest seeder that turns up later, with the right bytes.
func TestBadSeederIsBanned(t *testing.T) {
	m := startMediator(t)
	b := chromium.New(t)
	liar, fetcher, honest := b.Tab(), b.NewTab(), b.NewTab()
	navigate(t, liar, m.URL()+"/test.html")
	navigate(t, fetcher, m.URL()+"/test.html")
	navigate(t, honest, m.URL()+"/test.html")

	const size = 700000
	info := eval[string](t, liar, `(async () => { `+genJS+`
		window.node = await p2pcdn.connect({iceServers: [], debug: true});
		const good = new Blob([gen(`+fmt.Sprint(size)+`)]);
		const info = await p2pcdn.hashBlob(good, "x.bin");
		const bad = gen(`+fmt.Sprint(size)+`); bad[250000] ^= 1; // piece 1 is corrupt
		node._addComplete(info, new Blob([bad]));
		return JSON.stringify(info); })()`)
	liarID := eval[string](t, liar, `node.peerId`)

	eval[bool](t, fetcher, `(async () => {
		window.node = await p2pcdn.connect({iceServers: [], debug: true});
		window.result = node.fetch(`+info+`).then(async (b) => Array.from(new Uint8Array(await b.arrayBuffer())).join() === Array.from(gen(`+fmt.Sprint(size)+`)).join());
		return true; })()`)
	eval[bool](t, fetcher, genJS+`window.gen = gen; true`)
	hash := info[len(`{"full_hash":"`) : len(`{"full_hash":"`)+40]
	waitFor(t, fetcher, "the liar to be banned", fmt.Sprintf(`node.transfers.get(%q).banned.has(%q)`, hash, liarID))

	eval[bool](t, honest, `(async () => { `+genJS+`
		window.node = await p2pcdn.connect({iceServers: [], debug: true});
		await node.seed(new Blob([gen(`+fmt.Sprint(size)+`)]), {name: "x.bin"});
		return true; })()`)
	if !eval[bool](t, fetcher, `window.result`) {
		t.Fatal("fetched bytes differ from the honest file")
	}
	if n := eval[int](t, fetcher, fmt.Sprintf(`node.transfers.get(%q).wires.has(%q) ? 1 : 0`, hash, liarID)); n != 0 {
		t.Error("fetcher still connected to the banned peer")
	}
}

// TestManySeeders: a fetcher downloads from three seeders at once and then
// re-shares: the last page fetches with only re-sharing fetchers left.
func TestManySeeders(t *testing.T) {
	m := startMediator(t)
	b := chromium.New(t)
	s1, s2, s3, f := b.Tab(), b.NewTab(), b.NewTab(), b.NewTab()
	const size = 3000000
	seed := `(async () => { ` + genJS + `
		window.node = await p2pcdn.connect({iceServers: [], debug: true});
		return (await node.seed(new Blob([gen(` + fmt.Sprint(size) + `)]), {name: "big.bin"})).full_hash; })()`
	navigate(t, s1, m.URL()+"/test.html")
	navigate(t, s2, m.URL()+"/test.html")
	navigate(t, s3, m.URL()+"/test.html")
	navigate(t, f, m.URL()+"/test.html")
	hash := eval[string](t, s1, seed)
	if h := eval[string](t, s2, seed); h != hash {
		t.Fatalf("hash differs between pages: %s %s", h, hash)
	}
	eval[string](t, s3, seed)
	res := eval[map[string]any](t, f, fmt.Sprintf(`(async () => { `+genJS+`
		window.node = await p2pcdn.connect({iceServers: [], debug: true});
		let maxPeers = 0;
		const blob = await node.fetch(%q, {onProgress: (p) => { maxPeers = Math.max(maxPeers, p.peers); }});
		const t = node.transfers.get(%q);
		const from = [...t.wires.values()].filter((w) => w.downloaded > 0).length;
		const same = Array.from(new Uint8Array(await blob.arrayBuffer())).join() === Array.from(gen(%d)).join();
		return {same, maxPeers, from}; })()`, hash, hash, size))
	t.Logf("%v", res)
	if res["same"] != true {
		t.Fatal("fetched bytes differ")
	}
	if p, _ := res["from"].(float64); p < 2 {
		t.Errorf("downloaded from %v peers, want several", res["from"])
	}

	// The seeders leave; the fetcher re-shares what it got.
	for _, s := range []context.Context{s1, s2, s3} {
		navigate(t, s, "about:blank")
	}
	g := b.NewTab()
	navigate(t, g, m.URL()+"/test.html")
	got := eval[int](t, g, fmt.Sprintf(`(async () => {
		const node = await p2pcdn.connect({iceServers: [], debug: true});
		return (await node.fetch(%q)).size; })()`, hash))
	if got != size {
		t.Errorf("fetched %d bytes from the re-sharing page, want %d", got, size)
	}
}

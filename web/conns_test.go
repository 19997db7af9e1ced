package web

import (
	"fmt"
	"strings"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// countPCsJS wraps RTCPeerConnection so that window.pcs counts the peer
// connections of the page that connected (the library's and any other).
const countPCsJS = `window.pcs = 0; { const PC = window.RTCPeerConnection;
	window.RTCPeerConnection = function (...a) { const pc = new PC(...a);
		pc.addEventListener("connectionstatechange", () => { if (pc.connectionState === "connected") window.pcs++; }); return pc; };
	window.RTCPeerConnection.prototype = PC.prototype; } true`

// assetsJS defines assets(n, seed): n Blobs of 20–300 KB (3 MB for 24),
// different for each seed, and sum(blob): their SHA-256 in hex.
const assetsJS = `window.assets = (n, seed) => Array.from({length: n}, (_, i) => {
		const size = 20000 + Math.round(280000 * (((i * 7) % 24) / 23) ** 1.6), u = new Uint8Array(size);
		for (let j = 0; j < size; j += 4096) u[j] = (i + j / 4096 + seed) & 255;
		u[size - 1] = i; return new Blob([u]); });
	window.sum = async (b) => Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', await b.arrayBuffer())), (x) => x.toString(16).padStart(2, '0')).join('');
	true`

// TestOneConnectionPerPair: a page fetches 24 files that another page seeds.
// Both are ours, so they share one peer connection with a data channel per
// file; a page that marks nothing (trickle: false, as the prototype) gets a
// connection per file. A channel for a file the seeder does not have is
// refused by closing it, and the connection stays.
func TestOneConnectionPerPair(t *testing.T) {
	base := startMediator(t).URL()
	b := chromium.New(t)
	a, c, p := b.Tab(), b.NewTab(), b.NewTab()
	navigate(t, a, base+"/test.html")
	navigate(t, c, base+"/test.html")
	navigate(t, p, base+"/test.html")
	eval[bool](t, a, countPCsJS)
	eval[bool](t, c, countPCsJS)
	eval[bool](t, p, countPCsJS)
	eval[bool](t, a, assetsJS)
	eval[bool](t, c, assetsJS)
	eval[bool](t, p, assetsJS)

	const n = 24
	seeded := eval[map[string]any](t, a, fmt.Sprintf(`(async () => {
		window.node = await p2pcdn.connect({iceServers: []}); %s
		const out = {hashes: [], sums: [], bytes: 0};
		for (const blob of assets(%d, 1)) {
			out.hashes.push((await node.seed(blob, {name: "asset.bin"})).full_hash);
			out.sums.push(await sum(blob)); out.bytes += blob.size;
		}
		return out; })()`, recordSignalsJS, n))
	t.Logf("seeded %v bytes in %d files", seeded["bytes"], n)
	hashes := fmt.Sprint(jsonList(seeded["hashes"]))
	sums := fmt.Sprint(jsonList(seeded["sums"]))
	seederID := eval[string](t, a, `node.peerId`)

	got := eval[map[string]any](t, c, fmt.Sprintf(`(async () => {
		window.node = await p2pcdn.connect({iceServers: []}); %s
		const hashes = %s, sums = %s;
		const blobs = await Promise.all(hashes.map((h) => node.fetch(h)));
		const bad = [];
		for (let i = 0; i < blobs.length; i++) if (await sum(blobs[i]) !== sums[i]) bad.push(i);
		const conn = node.conns.get(%q);
		return {bad, pcs: window.pcs, conns: node.conns.size, wires: conn ? conn.wires.size : -1,
			labels: conn ? [...conn.wires].map((w) => w.dc.label) : []}; })()`, recordSignalsJS, hashes, sums, seederID))
	t.Logf("fetcher: %d peer connections, %v wires on the shared one", int(got["pcs"].(float64)), got["wires"])
	if bad := got["bad"].([]any); len(bad) != 0 {
		t.Fatalf("files %v differ from the seeded ones", bad)
	}
	if got["pcs"] != 1.0 || got["conns"] != 1.0 {
		t.Errorf("fetching %d files from one page made %v peer connections (%v shared), want 1", n, got["pcs"], got["conns"])
	}
	if got["wires"] != float64(n) {
		t.Errorf("the shared connection carries %v files, want %d", got["wires"], n)
	}
	for _, l := range got["labels"].([]any) {
		if s, _ := l.(string); !strings.HasPrefix(s, "p2pcdn/") || len(s) != len("p2pcdn/")+40 {
			t.Errorf("data channel label %q is not p2pcdn/<full hash>", s)
		}
	}
	if pcs := eval[int](t, a, `window.pcs`); pcs != 1 {
		t.Errorf("the seeder made %d peer connections, want 1", pcs)
	}
	offers := 0
	for _, s := range eval[[]map[string]any](t, c, `sent`) {
		if s["type"] == "offer" {
			offers++
			if s["p2pcdn"] != 1.0 || s["trickle"] != true {
				t.Errorf("offer not marked p2pcdn:1 and trickle: %v %v", s["p2pcdn"], s["trickle"])
			}
		}
	}
	if offers != 1 {
		t.Errorf("fetcher sent %d offers, want 1", offers)
	}
	for _, s := range eval[[]map[string]any](t, a, `sent`) {
		if s["type"] == "answer" && s["p2pcdn"] != 1.0 {
			t.Errorf("answer to a marked offer is not marked p2pcdn:1")
		}
	}

	// A channel for a file the seeder does not have is refused by closing
	// it; the connection and its other channels stay.
	refused := eval[map[string]any](t, c, fmt.Sprintf(`(async () => {
		const t = node._transfer("ab".repeat(20)); t.wanted = true;
		node._connect(t, %q);
		await new Promise((r) => { const f = () => t.failed.has(%[1]q) ? r() : setTimeout(f, 50); f(); });
		const conn = node.conns.get(%[1]q);
		return {kind: t.failed.get(%[1]q).kind, open: !!conn && conn.open && !conn.closed, wires: conn ? conn.wires.size : -1, pcs: window.pcs}; })()`, seederID))
	if refused["kind"] != "refused" || refused["open"] != true || refused["wires"] != float64(n) || refused["pcs"] != 1.0 {
		t.Errorf("after a refused channel: %v, want kind refused, the connection open with %d files, 1 peer connection", refused, n)
	}

	// A page that marks nothing is treated as a prototype peer: one
	// connection per file. (The fetcher leaves first, so that the seeder is
	// the only peer with the files.)
	eval[bool](t, c, `node.close(); true`)
	const k = 3
	proto := eval[map[string]any](t, p, fmt.Sprintf(`(async () => {
		window.node = await p2pcdn.connect({iceServers: [], trickle: false});
		const hashes = %s.slice(0, %d), sums = %s;
		const blobs = await Promise.all(hashes.map((h) => node.fetch(h)));
		let bad = 0;
		for (let i = 0; i < blobs.length; i++) if (await sum(blobs[i]) !== sums[i]) bad++;
		return {bad, pcs: window.pcs, shared: node.conns.size}; })()`, hashes, k, sums))
	if proto["bad"] != 0.0 || proto["pcs"] != float64(k) || proto["shared"] != 0.0 {
		t.Errorf("unmarked fetcher of %d files: %v, want every file intact, %d peer connections, none shared", k, proto, k)
	}
}

// jsonList renders a list of strings from eval as a JavaScript array literal.
func jsonList(v any) string {
	var sb strings.Builder
	sb.WriteString("[")
	for i, x := range v.([]any) {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, "%q", x)
	}
	sb.WriteString("]")
	return sb.String()
}

package browser

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// assetSize is the size of asset i of a page's 24: 20–300 KB, 3 MB together
// (the same sizes as bench/'s row).
func assetSize(i int) int64 {
	r := float64((i*7)%24) / 23
	return 20000 + int64(math.Round(280000*math.Pow(r, 1.6)))
}

// TestPageFetchesAssetsOverOneConnection: a page fetches 24 assets that one
// `p2pcdn seed` serves, all at once, by hash. Page and seeder are both ours,
// so they share one peer connection with a data channel per file, labelled
// p2pcdn/<full hash>; every file arrives intact.
func TestPageFetchesAssetsOverOneConnection(t *testing.T) {
	m := startMediator(t)
	dir := t.TempDir()
	sums := map[string]string{}
	var total int64
	for i := range 24 {
		name := fmt.Sprintf("asset%02d.bin", i)
		sums[name] = writeRandom(t, filepath.Join(dir, name), assetSize(i), uint64(200+i))
		total += assetSize(i)
	}
	s := startSeeder(t, m, dir)
	if len(s.infos) != 24 {
		t.Fatalf("seeder printed %d dictionaries, want 24", len(s.infos))
	}
	hashes, want := make([]string, 24), make([]string, 24)
	for i, in := range s.infos {
		hashes[i], want[i] = in.FullHash, sums[in.FileName]
	}
	hs, _ := json.Marshal(hashes)
	t.Logf("24 assets, %d bytes", total)

	b := chromium.New(t)
	tab := b.Tab()
	navigate(t, tab, m.page("/test.html"))
	got := eval[map[string]any](t, tab, fmt.Sprintf(`(async () => { %s
		let pcs = 0; { const PC = window.RTCPeerConnection; // connections that connected
			window.RTCPeerConnection = function (...a) { const pc = new PC(...a);
				pc.addEventListener("connectionstatechange", () => { if (pc.connectionState === "connected") pcs++; }); return pc; };
			window.RTCPeerConnection.prototype = PC.prototype; }
		const node = await p2pcdn.connect({iceServers: []});
		const blobs = await Promise.all(%s.map((h) => node.fetch(h)));
		const conns = [...node.conns.values()];
		return {sums: await Promise.all(blobs.map(sha256hex)), pcs, shared: conns.length,
			labels: conns.length ? [...conns[0].wires].map((w) => w.dc.label) : []}; })()`, sha256JS, hs))
	for i, sum := range got["sums"].([]any) {
		if sum != want[i] {
			t.Errorf("asset %s: fetched bytes have SHA-256 %v, want %s", s.infos[i].FileName, sum, want[i])
		}
	}
	if got["pcs"] != 1.0 || got["shared"] != 1.0 {
		t.Errorf("the page made %v peer connections (%v shared) for 24 files from one seeder, want 1", got["pcs"], got["shared"])
	}
	labels := got["labels"].([]any)
	if len(labels) != 24 {
		t.Errorf("the shared connection carries %d data channels, want 24", len(labels))
	}
	for _, l := range labels {
		if s, _ := l.(string); !strings.HasPrefix(s, "p2pcdn/") || !strings.Contains(string(hs), s[len("p2pcdn/"):]) {
			t.Errorf("data channel label %q is not p2pcdn/<one of the hashes>", s)
		}
	}
}

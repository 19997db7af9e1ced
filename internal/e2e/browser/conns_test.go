package browser

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
	"github.com/p2pcdn/p2pcdn/internal/content"
)

// TestPageFetchesManyFromNativeOverOneConnection: a page fetches every file a `p2pcdn seed` process
// serves; both are ours, so they share one RTCPeerConnection with a data channel per file
// (docs/extensions.md). Counted on both sides: the page's RTCPeerConnection constructor calls, and
// the seeder's "peer connection open" log lines.
func TestPageFetchesManyFromNativeOverOneConnection(t *testing.T) {
	m := startMediator(t)
	dir := t.TempDir()
	const n = 12
	sums := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("asset%02d.bin", i)
		sums[name] = writeRandom(t, filepath.Join(dir, name), int64(20_000+i*25_000), uint64(100+i))
	}
	p := start(t, "seeder", "seed", "--json", "--no-cache", "--ice-loopback", "--verbose", "--mediator", m.url(), "--for", seedFor, dir)
	p.WaitOutput(seedingRE, startTimeout)
	var hashes []string
	names := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(p.Stdout()), "\n") {
		info, err := content.ParseInfo([]byte(line))
		if err != nil {
			t.Fatalf("seeder printed %q: %v", line, err)
		}
		hashes = append(hashes, info.FullHash)
		names[info.FullHash] = info.FileName
	}
	if len(hashes) != n {
		t.Fatalf("seeder announced %d files, want %d", len(hashes), n)
	}

	b := chromium.New(t)
	tab := b.Tab()
	navigate(t, tab, m.page("/test.html"))
	eval[bool](t, tab, `window.pcs = 0; { const PC = window.RTCPeerConnection;
		window.RTCPeerConnection = function (...a) { window.pcs++; return new PC(...a); };
		window.RTCPeerConnection.prototype = PC.prototype; } true`)
	list := `["` + strings.Join(hashes, `","`) + `"]`
	got := eval[map[string]any](t, tab, fmt.Sprintf(`(async () => { %s
		const node = await p2pcdn.connect({iceServers: []});
		const blobs = await Promise.all(%s.map((h) => node.fetch(h)));
		const sums = [];
		for (const b of blobs) sums.push(await sha256hex(b));
		return {sums, pcs: window.pcs}; })()`, sha256JS, list))
	for i, s := range got["sums"].([]any) {
		if want := sums[names[hashes[i]]]; s != want {
			t.Errorf("%s: the page got SHA-256 %v, want %s", names[hashes[i]], s, want)
		}
	}
	if got["pcs"] != 1.0 {
		t.Errorf("the page made %v peer connections to fetch %d files from one seeder, want 1", got["pcs"], n)
	}
	if c := strings.Count(p.Stderr(), "peer connection open"); c != 1 {
		t.Errorf("the seeder opened %d peer connections, want 1", c)
	}
}

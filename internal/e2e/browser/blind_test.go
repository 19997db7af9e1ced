package browser

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// sentRequestsJS records, in window.sentRequests, every BitTorrent request the page sends on a data
// channel as [index, begin, length] (a request is <len=13><id=6><index><begin><length>; the page
// packs several messages into one send).
const sentRequestsJS = `(() => {
	window.sentRequests = [];
	const send = RTCDataChannel.prototype.send;
	RTCDataChannel.prototype.send = function (d) {
		const u8 = d instanceof ArrayBuffer ? new Uint8Array(d) : ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : null;
		if (u8) {
			const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
			for (let i = 0; i + 17 <= u8.length; i++) {
				if (dv.getUint32(i) === 13 && u8[i + 4] === 6) window.sentRequests.push([dv.getUint32(i + 5), dv.getUint32(i + 9), dv.getUint32(i + 13)]);
			}
		}
		return send.call(this, d);
	};
	return true; })()`

// TestPageAsksPieceZeroWithHandshake: a page fetching by hash from `p2pcdn seed` (a peer of ours) asks
// for all of piece 0 with its handshake, before it knows the dictionary (docs/extensions.md), and takes
// the answer as the piece: it never asks for piece 0's blocks. Checked for a one-piece file shorter
// than the blind request and a file of several pieces with a short last one.
func TestPageAsksPieceZeroWithHandshake(t *testing.T) {
	m := startMediator(t)
	dir := t.TempDir()
	sums := map[string]string{
		"one.bin":  writeRandom(t, filepath.Join(dir, "one.bin"), 50000, 7),
		"many.bin": writeRandom(t, filepath.Join(dir, "many.bin"), 777777, 8),
	}
	s := startSeeder(t, m, dir)
	b := chromium.New(t)
	for _, in := range s.infos {
		tab := b.NewTab()
		navigate(t, tab, m.page("/test.html"))
		eval[bool](t, tab, sentRequestsJS)
		eval[bool](t, tab, `p2pcdn.connect({iceServers: []}).then((n) => { window.node = n; return true; })`)
		got := eval[map[string]any](t, tab, fmt.Sprintf(`(async () => { %s
			const blob = await node.fetch(%q);
			return {sum: await sha256hex(blob), requests: window.sentRequests}; })()`, sha256JS, in.FullHash))
		if got["sum"] != sums[in.FileName] {
			t.Fatalf("%s: fetched bytes with SHA-256 %v, want %s", in.FileName, got["sum"], sums[in.FileName])
		}
		reqs, _ := got["requests"].([]any)
		if len(reqs) == 0 {
			t.Fatalf("%s: the page sent no request", in.FileName)
		}
		if first := fmt.Sprint(reqs[0]); first != "[0 0 200000]" {
			t.Errorf("%s: first request %s, want all of piece 0 (0, 0, 200000)", in.FileName, first)
		}
		for _, r := range reqs[1:] {
			if q, _ := r.([]any); len(q) == 3 && q[0] == float64(0) {
				t.Errorf("%s: the page asked for piece 0 again (%v); the blind answer should have been the piece", in.FileName, q)
			}
		}
	}
}

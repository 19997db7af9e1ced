package web

import (
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// TestWireSendPacksAndPaces drives the peer wire's send path against a fake
// data channel: small messages of one task leave packed in one channel
// message, no channel message exceeds 64 KiB, sending pauses while the
// channel's buffer is over its limit and resumes on bufferedamountlow, even
// when the buffer drains to exactly the threshold, and the bytes on the
// channel are exactly the messages and served blocks in order (a whole-piece
// request, as the prototype sends, and 16 KiB blocks, all served from one
// read of the file).
func TestWireSendPacksAndPaces(t *testing.T) {
	base := startMediator(t).URL()
	b := chromium.New(t)
	navigate(t, b.Tab(), base+"/test.html")
	res := eval[map[string]any](t, b.Tab(), `(async () => {
		const I = p2pcdn._internal, L = 200000;
		const data = new Uint8Array(5 * L); for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
		const piece = data.subarray(0, L);
		const node = { peerId: "22".repeat(20), log() {}, closed: false };
		const t = new I.Transfer(node, "11".repeat(20));
		t.setInfo({ full_hash: t.hash, file_name: "f", pieces_length: L, pieces_amount: 5, total_length: 5 * L, piece_hashes: Array(5).fill("00".repeat(20)) });
		t.setSource(new Blob([data]));
		let reads = 0;
		const ab = Blob.prototype.arrayBuffer;
		Blob.prototype.arrayBuffer = function () { reads++; return ab.call(this); };
		const dc = { readyState: "open", bufferedAmount: 0, sent: [], close() {},
			send(u) { this.sent.push(new Uint8Array(u)); this.bufferedAmount += u.byteLength; } };
		const w = new I.Wire(t, "33".repeat(20), false);
		w.attach({}, dc);
		const tick = () => new Promise((r) => setTimeout(r, 0));
		const want = [];
		const msg = (id, payload) => { const u = new Uint8Array(5 + payload.length); new DataView(u.buffer).setUint32(0, payload.length + 1); u[4] = id; u.set(payload, 5); want.push(u); };
		for (let i = 0; i < 10; i++) { w.sendHave(i); msg(4, new Uint8Array([0, 0, 0, i])); }
		await tick();
		const packedSmall = dc.sent.length;
		const block = (begin, len) => { const h = new Uint8Array(8); new DataView(h.buffer).setUint32(4, begin); const u = new Uint8Array(8 + len); u.set(h); u.set(piece.subarray(begin, begin + len), 8); msg(7, u); };
		w.queueUpload({ index: 0, begin: 0, length: L }); block(0, L);
		for (let b = 0; b < L; b += 16384) { const n = Math.min(16384, L - b); w.queueUpload({ index: 0, begin: b, length: n }); block(b, n); }
		let pausedAt = -1, stalls = 0;
		for (let round = 0; round < 200; round++) {
			await tick();
			const total = want.reduce((n, u) => n + u.length, 0), got = dc.sent.reduce((n, u) => n + u.length, 0);
			if (got === total) break;
			if (pausedAt < 0) pausedAt = dc.sent.length;
			// Drain to exactly the low-water mark first: sending must go on.
			const before = dc.sent.length;
			dc.bufferedAmount = round % 2 ? 0 : dc.bufferedAmountLowThreshold;
			dc.onbufferedamountlow();
			// The next blocks may still be on their way from the Blob (an
			// asynchronous read that a busy machine slows down): a stall is
			// no send at all within half a second, not within one tick.
			for (let k = 0; k < 100 && dc.sent.length === before; k++) await new Promise((r) => setTimeout(r, 5));
			if (dc.sent.length === before) stalls++;
		}
		const cat = (l) => { const u = new Uint8Array(l.reduce((n, x) => n + x.length, 0)); let o = 0; for (const x of l) { u.set(x, o); o += x.length; } return u; };
		const a = cat(dc.sent), e = cat(want);
		let same = a.length === e.length;
		for (let i = 0; same && i < a.length; i++) same = a[i] === e[i];
		return { packedSmall, maxMsg: Math.max(...dc.sent.map((u) => u.length)), pausedAt, stalls, same, got: a.length, want: e.length, reads, closed: w.closed };
	})()`)
	if res["packedSmall"] != 1.0 {
		t.Errorf("10 have messages in one task went out in %v channel messages, want 1", res["packedSmall"])
	}
	if m := res["maxMsg"].(float64); m > 65536 {
		t.Errorf("a channel message has %v bytes, the limit is 65536", m)
	}
	if p := res["pausedAt"].(float64); p < 1 {
		t.Errorf("sending did not pause on a full channel buffer (paused after %v messages)", p)
	}
	if res["stalls"] != 0.0 || res["same"] != true || res["closed"] != false {
		t.Errorf("stalls %v, bytes on the channel equal the messages: %v (got %v bytes, want %v), closed %v", res["stalls"], res["same"], res["got"], res["want"], res["closed"])
	}
	if res["reads"] != 1.0 {
		t.Errorf("the file was read %v times for 14 requests in its first MiB, want once", res["reads"])
	}
}

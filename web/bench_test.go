package web

import (
	"fmt"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// BenchmarkPageToPage fetches a file between two tabs through p2pcdn and, in
// the same run, sends the same number of bytes over a bare RTCDataChannel
// (two peer connections in one page, 64 KiB messages, the same flow
// control) as the baseline. It reports both rates and their ratio.
func BenchmarkPageToPage(b *testing.B) {
	const size = 16 << 20
	m := startMediator(b).URL()
	br := chromium.New(b)
	a, c := br.Tab(), br.NewTab()
	navigate(b, a, m+"/test.html")
	navigate(b, c, m+"/test.html")
	eval[bool](b, a, `p2pcdn.connect({iceServers: []}).then((n) => { window.node = n; return true; })`)
	eval[bool](b, c, `p2pcdn.connect({iceServers: []}).then((n) => { window.node = n; return true; })`)
	var p2p, raw float64
	for i := 0; b.Loop(); i++ {
		hash := eval[string](b, a, fmt.Sprintf(`(async () => {
			const u = new Uint8Array(%d); for (let j = 0; j < u.length; j += 4096) u[j] = (j / 4096 + %d) & 255;
			return (await node.seed(new Blob([u]), {name: "b.bin"})).full_hash; })()`, size, i))
		p2p += eval[float64](b, c, fmt.Sprintf(`(async () => {
			const t0 = performance.now(); await node.fetch(%q); return (performance.now() - t0) / 1000; })()`, hash))
		raw += eval[float64](b, c, fmt.Sprintf(`(async () => {
			const x = new RTCPeerConnection({iceServers: []}), y = new RTCPeerConnection({iceServers: []});
			x.onicecandidate = (e) => e.candidate && y.addIceCandidate(e.candidate);
			y.onicecandidate = (e) => e.candidate && x.addIceCandidate(e.candidate);
			const dc = x.createDataChannel("raw", {ordered: true});
			const got = new Promise((resolve) => { y.ondatachannel = (e) => { let n = 0; e.channel.binaryType = "arraybuffer"; e.channel.onmessage = (m) => { n += m.data.byteLength; if (n >= %d) resolve(); }; }; });
			await x.setLocalDescription(); await y.setRemoteDescription(x.localDescription);
			await y.setLocalDescription(); await x.setRemoteDescription(y.localDescription);
			await new Promise((r) => dc.onopen = r);
			dc.bufferedAmountLowThreshold = 256 << 10;
			const chunk = new Uint8Array(65536), t0 = performance.now();
			for (let sent = 0; sent < %d; sent += chunk.length) {
				if (dc.bufferedAmount > 1 << 20) await new Promise((r) => dc.onbufferedamountlow = r);
				dc.send(chunk);
			}
			await got; const s = (performance.now() - t0) / 1000; x.close(); y.close(); return s; })()`, size, size))
	}
	mb := float64(size) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/p2p, "p2pcdn-MiB/s")
	b.ReportMetric(mb/raw, "rawdc-MiB/s")
	b.ReportMetric(raw/p2p, "p2pcdn/raw")
}

// BenchmarkHashBlob compares hashing a file the prototype's way (bytes
// re-encoded, SHA-1 per piece, Merkle fold) with plain WebCrypto SHA-1 over
// the same bytes, in the same run.
func BenchmarkHashBlob(b *testing.B) {
	const size = 32 << 20
	m := startMediator(b).URL()
	br := chromium.New(b)
	navigate(b, br.Tab(), m+"/test.html")
	eval[bool](b, br.Tab(), fmt.Sprintf(`(() => { const u = new Uint8Array(%d); for (let i = 0; i < u.length; i++) u[i] = (i * 7 + 3) & 255; window.blob = new Blob([u]); window.bytes = u; return true; })()`, size))
	var quirky, plain float64
	for b.Loop() {
		quirky += eval[float64](b, br.Tab(), `(async () => { const t0 = performance.now(); await p2pcdn.hashBlob(blob, "h.bin"); return (performance.now() - t0) / 1000; })()`)
		plain += eval[float64](b, br.Tab(), `(async () => { const t0 = performance.now(); await crypto.subtle.digest("SHA-1", bytes); return (performance.now() - t0) / 1000; })()`)
	}
	mb := float64(size) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/quirky, "hashBlob-MiB/s")
	b.ReportMetric(mb/plain, "sha1-MiB/s")
	b.ReportMetric(plain/quirky, "hashBlob/sha1")
}

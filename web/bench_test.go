package web

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
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

// rawTabsJS defines both halves of a bare RTCDataChannel between two tabs:
// rawOffer/rawSend in the sending tab, rawRecv in the receiving one.
// rawSend sends size bytes in msg-byte messages, waiting for the buffered
// amount to fall to low whenever it exceeds high.
const rawTabsJS = `(() => {
	const gathered = (pc) => pc.iceGatheringState === "complete" ? Promise.resolve() :
		new Promise((r) => pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r()));
	window.rawOffer = async () => {
		if (window.rawPC) rawPC.close();
		window.rawPC = new RTCPeerConnection({iceServers: []});
		window.rawDC = rawPC.createDataChannel("raw");
		await rawPC.setLocalDescription(); await gathered(rawPC);
		return rawPC.localDescription.sdp;
	};
	window.rawRecv = async (sdp, size) => {
		if (window.rawPC) rawPC.close();
		const pc = window.rawPC = new RTCPeerConnection({iceServers: []});
		window.rawDone = new Promise((resolve) => {
			pc.ondatachannel = (e) => {
				const ch = e.channel, t0 = performance.now();
				let n = 0;
				ch.binaryType = "arraybuffer";
				ch.onmessage = (m) => { n += m.data.byteLength; if (n >= size) resolve((performance.now() - t0) / 1000); };
			};
		});
		await pc.setRemoteDescription({type: "offer", sdp});
		await pc.setLocalDescription(await pc.createAnswer()); await gathered(pc);
		return pc.localDescription.sdp;
	};
	window.rawSend = async (sdp, size, msg, high, low) => {
		const dc = rawDC;
		const open = dc.readyState === "open" ? Promise.resolve() : new Promise((r) => dc.onopen = r);
		await rawPC.setRemoteDescription({type: "answer", sdp});
		await open;
		dc.bufferedAmountLowThreshold = low;
		const chunk = new Uint8Array(msg);
		for (let sent = 0; sent < size; sent += chunk.length) {
			if (dc.bufferedAmount > high) await new Promise((r) => dc.onbufferedamountlow = r);
			dc.send(sent + chunk.length <= size ? chunk : chunk.subarray(0, size - sent));
		}
		return true;
	};
	return true; })()`

// loopbackOnly keeps only the 127.0.0.1 candidates of an SDP.
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

// rawTabs sends size bytes from tab tx to tab rx over a fresh bare data
// channel and returns the receiver's seconds from the channel's arrival to
// the last byte.
func rawTabs(b *testing.B, tx, rx context.Context, size, msg, high, low int) float64 {
	b.Helper()
	o := eval[string](b, tx, `rawOffer()`)
	a := eval[string](b, rx, fmt.Sprintf(`rawRecv(%q, %d)`, loopbackOnly(o), size))
	eval[bool](b, tx, fmt.Sprintf(`rawSend(%q, %d, %d, %d, %d)`, loopbackOnly(a), size, msg, high, low))
	return eval[float64](b, rx, `rawDone`)
}

// BenchmarkPageToPageTabs is the bench command's page-to-page row: one tab
// seeds 64 MiB of random bytes, another tab (a fresh node each time) fetches
// it by hash; baselines in the same run are a bare data channel between two
// tabs, sent like bench/ does (64 KiB messages, 1 MiB / 512 KiB watermarks)
// and like simple-peer (WebTorrent) does (16 KiB messages, 64 KiB).
func BenchmarkPageToPageTabs(b *testing.B) {
	const size = 64 << 20
	m := startMediator(b).URL()
	br := chromium.New(b)
	a, c := br.Tab(), br.NewTab()
	navigate(b, a, m+"/test.html")
	navigate(b, c, m+"/test.html")
	eval[bool](b, a, rawTabsJS)
	eval[bool](b, c, rawTabsJS)
	hash := eval[string](b, a, fmt.Sprintf(`(async () => {
		const u = new Uint8Array(%d); for (let j = 0; j < u.length; j += 65536) crypto.getRandomValues(u.subarray(j, j + 65536));
		window.node = await p2pcdn.connect({iceServers: []});
		return (await node.seed(new Blob([u]), {name: "b.bin"})).full_hash; })()`, size))
	var p2p, raw, raw16 float64
	for b.Loop() {
		p2p += eval[float64](b, c, fmt.Sprintf(`(async () => {
			const node = await p2pcdn.connect({iceServers: []});
			try {
				const t0 = performance.now(), blob = await node.fetch(%q), s = (performance.now() - t0) / 1000;
				if (blob.size !== %d) throw new Error("fetched " + blob.size + " bytes");
				return s;
			} finally { node.close(); } })()`, hash, size))
		raw += rawTabs(b, a, c, size, 65536, 1<<20, 512<<10)
		raw16 += rawTabs(b, a, c, size, 16384, 64<<10, 64<<10)
	}
	mib := float64(size) / (1 << 20) * float64(b.N)
	b.ReportMetric(mib/p2p, "p2pcdn-MiB/s")
	b.ReportMetric(mib/raw, "raw64k-MiB/s")
	b.ReportMetric(mib/raw16, "raw16k-MiB/s")
	b.ReportMetric(raw/p2p, "p2pcdn/raw64k")
	b.ReportMetric(raw16/p2p, "p2pcdn/raw16k")
}

// BenchmarkPageAssets is the 24-asset page between pages: one tab seeds 24
// files of 20–300 KB (3 MB), a fresh node in another tab fetches them all at
// once by hash (mediator connection included); the baselines, interleaved,
// are the same tab fetching the same files from an HTTP/1.1 server
// (net/http), and the same number of bytes over a bare data channel between
// the two tabs (the transport's floor, setup not included).
func BenchmarkPageAssets(b *testing.B) {
	m := startMediator(b)
	files := map[string][]byte{}
	var names []string
	total := 0
	for i := range 24 {
		r := float64((i*7)%24) / 23
		data := make([]byte, 20000+int(math.Round(280000*math.Pow(r, 1.6))))
		rand.NewChaCha8([32]byte{byte(i)}).Read(data) //nolint:errcheck // never fails
		name := fmt.Sprintf("/asset%02d.bin", i)
		files[name], names = data, append(names, name)
		total += len(data)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(files[r.URL.Path]) //nolint:errcheck // the page checks the sizes
	}))
	defer srv.Close()
	urls := make([]string, len(names))
	for i, n := range names {
		urls[i] = srv.URL + n
	}
	us, _ := json.Marshal(urls)

	br := chromium.New(b)
	a, c := br.Tab(), br.NewTab()
	navigate(b, a, m.URL()+"/test.html")
	navigate(b, c, m.URL()+"/test.html")
	hashes := eval[[]string](b, a, fmt.Sprintf(`(async () => {
		window.node = await p2pcdn.connect({iceServers: []});
		const hs = [];
		for (const u of %s) hs.push((await node.seed(new Blob([await (await fetch(u)).arrayBuffer()]), {name: "a.bin"})).full_hash);
		return hs; })()`, us))
	hs, _ := json.Marshal(hashes)
	eval[bool](b, c, countPCsJS)
	eval[bool](b, a, rawTabsJS)
	eval[bool](b, c, rawTabsJS)
	var p2p, plain, raw, pcs float64
	for b.Loop() {
		r := eval[[]float64](b, c, fmt.Sprintf(`(async () => {
			const pcs = window.pcs, t0 = performance.now(), node = await p2pcdn.connect({iceServers: []});
			try { await Promise.all(%s.map((h) => node.fetch(h))); return [(performance.now() - t0) / 1000, window.pcs - pcs]; } finally { node.close(); } })()`, hs))
		p2p, pcs = p2p+r[0], pcs+r[1]
		plain += eval[float64](b, c, fmt.Sprintf(`(async () => {
			const t0 = performance.now(); await Promise.all(%s.map(async (u) => (await fetch(u, {cache: "no-store"})).arrayBuffer()));
			return (performance.now() - t0) / 1000; })()`, us))
		raw += rawTabs(b, a, c, total, 65536, 1<<20, 512<<10)
	}
	n := float64(b.N)
	b.ReportMetric(p2p/n*1000, "p2pcdn-ms/page")
	b.ReportMetric(plain/n*1000, "http-ms/page")
	b.ReportMetric(raw/n*1000, "rawdc-ms/page")
	b.ReportMetric(p2p/plain, "p2pcdn/http")
	b.ReportMetric(raw/plain, "rawdc/http")
	b.ReportMetric(pcs/n, "pcs/page")
}

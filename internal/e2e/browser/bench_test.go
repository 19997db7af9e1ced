package browser

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// fetchNodeJS times, in the page, one fetch of a hash by a fresh node (its
// mediator connection made beforehand, outside the timing) and returns the
// seconds it took; the node closes afterwards so the next iteration starts
// without a peer connection.
const fetchNodeJS = `(async () => {
	const node = await p2pcdn.connect({iceServers: []});
	try {
		const t0 = performance.now();
		const blob = await node.fetch(%q);
		const s = (performance.now() - t0) / 1000;
		if (blob.size !== %d) throw new Error("fetched " + blob.size + " bytes, want %[2]d");
		return s;
	} finally { node.close(); } })()`

// BenchmarkPageFetch1MBFromNative times a page fetching 1 MiB by hash from
// `p2pcdn seed` (peer lookup, WebRTC connection, info dictionary, pieces) and,
// in the same run, three baselines: the same page fetching the same file with
// fetch() from a net/http server on loopback, and 1 MiB sent by plain pion
// over an already open data channel to the page (the transport's floor), once
// with pion's usual flow control (rawpion) and once paced like internal/rtc's
// send window (rawwindow).
func BenchmarkPageFetch1MBFromNative(b *testing.B) {
	const size = 1 << 20
	m := startMediator(b)
	dir := b.TempDir()
	path := filepath.Join(dir, "one.bin")
	writeRandom(b, path, size, 11)
	s := startSeeder(b, m, path)
	hash := s.info("one.bin").FullHash
	httpURL := serveFile(b, path)

	br := chromium.New(b)
	tab := br.Tab()
	navigate(b, tab, m.page("/test.html"))
	eval[bool](b, tab, rawReceiverJS)
	api := loopbackPion()
	var p2p, plain, raw, rawWin float64
	for b.Loop() {
		raw += rawTransfer(b, api, tab, size, plainFlow)
		rawWin += rawTransfer(b, api, tab, size, windowFlow)
		p2p += eval[float64](b, tab, fmt.Sprintf(fetchNodeJS, hash, size))
		plain += eval[float64](b, tab, fmt.Sprintf(`(async () => {
			const t0 = performance.now();
			const blob = await (await fetch(%q, {cache: "no-store"})).blob();
			const s = (performance.now() - t0) / 1000;
			if (blob.size !== %d) throw new Error("fetched " + blob.size + " bytes");
			return s; })()`, httpURL, size))
	}
	n := float64(b.N)
	b.ReportMetric(p2p/n*1000, "p2pcdn-ms/fetch")
	b.ReportMetric(plain/n*1000, "http-ms/fetch")
	b.ReportMetric(raw/n*1000, "rawpion-ms/MiB")
	b.ReportMetric(rawWin/n*1000, "rawwindow-ms/MiB")
	b.ReportMetric(p2p/plain, "p2pcdn/http")
	b.ReportMetric(p2p/raw, "p2pcdn/rawpion")
	b.ReportMetric(rawWin/raw, "rawwindow/rawpion")
}

// serveFile serves path over HTTP on loopback, to any origin, and returns its URL.
func serveFile(tb testing.TB, path string) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFile(w, r, path)
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed at cleanup
	}()
	tb.Cleanup(func() {
		srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String() + "/" + filepath.Base(path)
}

// BenchmarkPageFetch64MBFromNative measures a page fetching 64 MiB from
// `p2pcdn seed` and, in the same run, 64 MiB sent over one bare data channel
// from plain pion to the same page as the baselines: with pion's usual flow
// control (64 KiB messages, 1 MiB / 512 KiB buffered-amount watermarks) and
// paced like internal/rtc's send window.
func BenchmarkPageFetch64MBFromNative(b *testing.B) {
	const size = 64 << 20
	m := startMediator(b)
	path := filepath.Join(b.TempDir(), "big.bin")
	writeRandom(b, path, size, 12)
	s := startSeeder(b, m, path)
	hash := s.info("big.bin").FullHash

	br := chromium.New(b)
	tab := br.Tab()
	navigate(b, tab, m.page("/test.html"))
	eval[bool](b, tab, rawReceiverJS)
	api := loopbackPion()
	var p2p, raw, rawWin float64
	for b.Loop() {
		p2p += eval[float64](b, tab, fmt.Sprintf(fetchNodeJS, hash, size))
		raw += rawTransfer(b, api, tab, size, plainFlow)
		rawWin += rawTransfer(b, api, tab, size, windowFlow)
	}
	mib := float64(size) / (1 << 20) * float64(b.N)
	b.ReportMetric(mib/p2p, "p2pcdn-MiB/s")
	b.ReportMetric(mib/raw, "rawpion-MiB/s")
	b.ReportMetric(mib/rawWin, "rawwindow-MiB/s")
	b.ReportMetric(raw/p2p, "p2pcdn/raw")
	b.ReportMetric(raw/rawWin, "rawwindow/raw")
}

// rawReceiverJS defines the page's side of the raw baseline: rawOffer()
// makes a peer connection with one data channel and returns the complete
// offer SDP (non-trickle); rawReceive(answer, n) applies the answer, waits
// for the channel, sends "go" and returns the seconds until n bytes arrived.
const rawReceiverJS = `(() => {
	window.rawOffer = async () => {
		const pc = new RTCPeerConnection({iceServers: []});
		const dc = pc.createDataChannel("raw", {ordered: true});
		dc.binaryType = "arraybuffer";
		window.raw = {pc, dc};
		const gathered = new Promise((r) => { pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); });
		await pc.setLocalDescription();
		if (pc.iceGatheringState !== "complete") await gathered;
		return pc.localDescription.sdp;
	};
	window.rawReceive = async (answer, n) => {
		const {pc, dc} = window.raw;
		await pc.setRemoteDescription({type: "answer", sdp: answer});
		if (dc.readyState !== "open") await new Promise((r, j) => { dc.onopen = r; dc.onclose = () => j(new Error("channel closed")); });
		let got = 0;
		const done = new Promise((r) => { dc.onmessage = (m) => { got += m.data.byteLength; if (got >= n) r(); }; });
		const t0 = performance.now();
		dc.send("go");
		await done;
		const s = (performance.now() - t0) / 1000;
		pc.close();
		return s;
	};
	return true; })()`

// loopbackPion is pion with default settings except that ICE stays on IPv4
// loopback, so the baseline sends nothing beyond 127.0.0.1.
func loopbackPion() *webrtc.API {
	var se webrtc.SettingEngine
	lo4 := func(ip net.IP) bool { return ip.To4() != nil && ip.IsLoopback() }
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(lo4)
	se.SetRemoteIPFilter(lo4)
	se.SetInterfaceFilter(func(name string) bool {
		ifc, err := net.InterfaceByName(name)
		return err == nil && ifc.Flags&net.FlagLoopback != 0
	})
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// rawTransfer answers the page's offer with plain pion, sends size bytes
// paced by flow when the page says "go", and returns the seconds the page
// measured.
func rawTransfer(b testing.TB, api *webrtc.API, tab context.Context, size int, flow rawFlow) float64 {
	b.Helper()
	offer := eval[string](b, tab, `rawOffer()`)
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	sent := make(chan error, 1)
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(msg webrtc.DataChannelMessage) {
			if string(msg.Data) == "go" {
				go func() { sent <- sendRaw(ctx, dc, size, flow) }() // ends when sent, or with ctx / the channel
			}
		})
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		b.Fatalf("raw pion: applying the page's offer: %v", err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		b.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		b.Fatal(err)
	}
	<-gathered
	secs := eval[float64](b, tab, fmt.Sprintf(`rawReceive(%q, %d)`, pc.LocalDescription().SDP, size))
	select {
	case err := <-sent:
		if err != nil {
			b.Fatalf("raw pion sender: %v", err)
		}
	case <-ctx.Done():
		b.Fatal("raw pion sender did not finish")
	}
	return secs
}

// rawFlow is how a raw sender paces its writes: it sends messages of chunk
// bytes while at most high bytes are queued or unacknowledged, and then
// waits for the amount to fall below low.
type rawFlow struct{ high, low, chunk int }

var (
	// plainFlow is the usual pion usage: 64 KiB messages, 1 MiB / 512 KiB
	// watermarks (internal/rtc's settings before its send window).
	plainFlow = rawFlow{high: 1 << 20, low: 512 << 10, chunk: 64 << 10}
	// windowFlow is internal/rtc's send window on a short path: at most
	// 64 KiB unacknowledged in 16 KiB messages.
	windowFlow = rawFlow{high: 48 << 10, low: 32 << 10, chunk: 16 << 10}
)

// sendRaw sends size bytes paced by flow.
func sendRaw(ctx context.Context, dc *webrtc.DataChannel, size int, flow rawFlow) error {
	high, low := uint64(flow.high), uint64(flow.low)
	lowCh := make(chan struct{}, 1)
	dc.SetBufferedAmountLowThreshold(low)
	dc.OnBufferedAmountLow(func() {
		select {
		case lowCh <- struct{}{}:
		default:
		}
	})
	chunk := make([]byte, flow.chunk)
	for sent := 0; sent < size; sent += len(chunk) {
		for dc.BufferedAmount() > high {
			select {
			case <-lowCh:
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second): // a missed edge must not stall the benchmark
			}
		}
		if err := dc.Send(chunk[:min(len(chunk), size-sent)]); err != nil {
			return fmt.Errorf("send at %d bytes: %w", sent, err)
		}
	}
	if dc.ReadyState() != webrtc.DataChannelStateOpen {
		return errors.New("the channel closed before everything was queued")
	}
	return nil
}

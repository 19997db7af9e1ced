package rtc

import (
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// Throughput of one connection over loopback, sender and receiver in this process. Compare the
// variants within one run only: the machine is shared and absolute figures drift.
//
//	go test -run XXX -bench . -count 3 ./internal/rtc/

const benchBlock = 1 << 20 // bytes written per iteration

// cpuTime is this process's user+system CPU time. CPU per byte is steadier than MB/s on a busy machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startCPU resets the timer and returns a func that stops it and reports CPU ns per byte moved.
func startCPU(b *testing.B) func() {
	b.SetBytes(benchBlock)
	b.ResetTimer()
	start := cpuTime()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-start)/float64(int64(b.N)*benchBlock), "cpu-ns/B")
	}
}

func benchConn(b *testing.B, cfg Config) {
	a := newTestTransport(b, cfg)
	bt := newTestTransport(b, cfg)
	ca, cb := connect(b, a, bt, nil)
	buf := make([]byte, benchBlock)
	stop := startCPU(b)
	done := make(chan error, 1)
	total := int64(b.N) * benchBlock
	go func() {
		// 64 KiB reads, like a bufio.Reader in the peer wire.
		n, err := io.CopyBuffer(io.Discard, io.LimitReader(cb, total), make([]byte, 64<<10))
		if err == nil && n != total {
			err = io.ErrUnexpectedEOF
		}
		done <- err
	}()
	for range b.N {
		if _, err := ca.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	stop()
}

// BenchmarkConn is our Conn with our defaults.
func BenchmarkConn(b *testing.B) { benchConn(b, Config{}) }

// BenchmarkConnVariant changes one knob from our defaults at a time.
func BenchmarkConnVariant(b *testing.B) {
	for _, v := range []struct {
		name string
		cfg  Config
	}{
		{"chunk8K", Config{WriteChunk: 8 << 10}},
		{"chunk64K", Config{WriteChunk: 64 << 10}},
		{"socketBufOS", Config{SocketBuffer: -1}},
		{"sctpRecv1M", Config{SCTPReceiveBuffer: 1 << 20}},
		{"window256K", Config{MinWindow: 256 << 10}},
		{"window1M", Config{MinWindow: 1 << 20}},
		{"window4M", Config{MinWindow: 4 << 20, HighWater: 4 << 20}},
		{"pionDefaults", Config{WriteChunk: 64 << 10, SocketBuffer: -1, SCTPReceiveBuffer: 1 << 20, MinWindow: 1 << 20}},
	} {
		b.Run(v.name, func(b *testing.B) { benchConn(b, v.cfg) })
	}
}

// rawPair connects two plain pion peers (default settings, ICE held to loopback) with one data channel.
func rawPair(b *testing.B, detach bool) (send, recv *webrtc.DataChannel) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	api := plainPionAPI(detach)
	p1, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	p2, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p1.GracefulClose(); _ = p2.GracefulClose() })
	dc, err := p1.CreateDataChannel("bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	open1 := make(chan struct{})
	dc.OnOpen(func() { close(open1) })
	got := make(chan *webrtc.DataChannel, 1)
	p2.OnDataChannel(func(d *webrtc.DataChannel) { got <- d })
	exchange := func(from, to *webrtc.PeerConnection, offer bool) {
		var desc webrtc.SessionDescription
		if offer {
			desc, err = from.CreateOffer(nil)
		} else {
			desc, err = from.CreateAnswer(nil)
		}
		if err != nil {
			b.Fatal(err)
		}
		g := webrtc.GatheringCompletePromise(from)
		if err := from.SetLocalDescription(desc); err != nil {
			b.Fatal(err)
		}
		<-g
		if err := to.SetRemoteDescription(*from.LocalDescription()); err != nil {
			b.Fatal(err)
		}
	}
	exchange(p1, p2, true)
	exchange(p2, p1, false)
	select {
	case <-open1:
	case <-ctx.Done():
		b.Fatal("channel did not open")
	}
	return dc, <-got
}

// rawSend writes n bytes as 64 KiB messages with the usual bufferedAmount flow control (1 MiB / 512 KiB).
func rawSend(b *testing.B, dc *webrtc.DataChannel, write func([]byte) error, n int64) {
	low := make(chan struct{}, 1)
	dc.SetBufferedAmountLowThreshold(512 << 10)
	dc.OnBufferedAmountLow(func() {
		select {
		case low <- struct{}{}:
		default:
		}
	})
	msg := make([]byte, 64<<10)
	for sent := int64(0); sent < n; sent += int64(len(msg)) {
		for dc.BufferedAmount() > 1<<20 {
			<-low
		}
		if err := write(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawPion is the baseline: plain pion, default settings, OnMessage delivery.
func BenchmarkRawPion(b *testing.B) {
	send, recv := rawPair(b, false)
	total := int64(b.N) * benchBlock
	done := make(chan struct{})
	var got int64
	recv.OnMessage(func(m webrtc.DataChannelMessage) {
		got += int64(len(m.Data))
		if got == total {
			close(done)
		}
	})
	stop := startCPU(b)
	rawSend(b, send, send.Send, total)
	<-done
	stop()
}

// BenchmarkRawPionDetached is plain pion with detached channels (Read/Write), otherwise default settings.
func BenchmarkRawPionDetached(b *testing.B) {
	send, recv := rawPair(b, true)
	var sw, rr io.ReadWriter
	var err error
	// Detach once both are open: rawPair waited for the sender; the receiver opens at the same time.
	if sw, err = send.Detach(); err != nil {
		b.Fatal(err)
	}
	opened := make(chan struct{})
	recv.OnOpen(func() { close(opened) })
	<-opened
	if rr, err = recv.Detach(); err != nil {
		b.Fatal(err)
	}
	total := int64(b.N) * benchBlock
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		var got int64
		for got < total {
			n, err := rr.Read(buf)
			if err != nil {
				done <- err
				return
			}
			got += int64(n)
		}
		done <- nil
	}()
	stop := startCPU(b)
	rawSend(b, send, func(p []byte) error { _, err := sw.Write(p); return err }, total)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	stop()
}

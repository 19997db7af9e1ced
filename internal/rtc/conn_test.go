package rtc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

func TestDialAcceptBothWays(t *testing.T) {
	a := newTestTransport(t, Config{})
	b := newTestTransport(t, Config{})
	ca, cb := connect(t, a, b, nil)
	if !strings.HasPrefix(ca.RemoteAddr(), "127.0.0.1:") || !strings.HasPrefix(cb.RemoteAddr(), "127.0.0.1:") {
		t.Errorf("remote addresses %q, %q: want loopback", ca.RemoteAddr(), cb.RemoteAddr())
	}
	const size = 3<<20 + 12345 // not a multiple of any chunk size
	check := func(name string, w, r Conn) chan error {
		done := make(chan error, 2)
		data := make([]byte, size)
		_, _ = rand.Read(data)
		want := sha256.Sum256(data)
		go func() {
			_, err := w.Write(data)
			done <- err
		}()
		go func() {
			h := sha256.New()
			// Odd read size: exercises leftovers of messages bigger than the read.
			n, err := io.CopyBuffer(h, io.LimitReader(r, size), make([]byte, 1000))
			if err == nil && n != size {
				err = errors.New(name + ": short read " + strconv.FormatInt(n, 10))
			}
			if err == nil && !bytes.Equal(h.Sum(nil), want[:]) {
				err = errors.New(name + ": checksum mismatch")
			}
			done <- err
		}()
		return done
	}
	ab := check("a->b", ca, cb)
	ba := check("b->a", cb, ca)
	for range 2 {
		for _, ch := range []chan error{ab, ba} {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
	}
	// Closing one side ends the other's reads.
	if err := ca.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := cb.Read(make([]byte, 10)); err == nil {
		t.Error("Read after the remote closed: want an error")
	}
}

// TestSDPAdvertisesMaxMessageSize also checks how complete our descriptions are: the offer carries
// its candidates (the prototype may answer it); the answer to a marked offer of ours goes out at once
// and its candidates follow as trickle signals; the answer to an unmarked (prototype) offer carries
// them all.
func TestSDPAdvertisesMaxMessageSize(t *testing.T) {
	for _, marked := range []bool{true, false} {
		t.Run(fmt.Sprintf("marked=%v", marked), func(t *testing.T) {
			a := newTestTransport(t, Config{})
			b := newTestTransport(t, Config{})
			var offer string
			var sent []string // by b
			var mu sync.Mutex
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			toA := make(chan string, 64)
			done := make(chan error, 1)
			offers := make(chan string, 1)
			go func() {
				o := <-offers
				if !marked {
					sig, _ := ParseSignal(o)
					sig.Trickle, sig.P2PCDN = false, 0
					o = sig.String()
				}
				c, err := b.Accept(ctx, o, func(ctx context.Context, s string) error {
					mu.Lock()
					sent = append(sent, s)
					mu.Unlock()
					return chanSend(toA)(ctx, s)
				}, nil)
				if err == nil {
					t.Cleanup(func() { _ = c.Close() })
				}
				done <- err
			}()
			c, err := a.Dial(ctx, func(ctx context.Context, s string) error { offer = s; offers <- s; return nil }, toA)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for name, s := range map[string]string{"offer": offer, "answer": sent[0]} {
				sig, err := ParseSignal(s)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if sig.Type != name || !sig.Trickle || sig.P2PCDN != ExtensionLevel {
					t.Errorf("%s signal: type %q, trickle %v, p2pcdn %d; want ours, marked", name, sig.Type, sig.Trickle, sig.P2PCDN)
				}
				if sig.RecvBuffer != a.rcvbuf || sig.RecvBuffer != b.rcvbuf {
					t.Errorf("%s signal: rcvbuf %d, want what our sockets hold, %d", name, sig.RecvBuffer, a.rcvbuf)
				}
				v, err := strconv.Atoi(sdpMaxMessageSize(sig.SDP))
				if err != nil || v < 262144 {
					t.Errorf("%s: a=max-message-size %q, want >= 262144", name, sdpMaxMessageSize(sig.SDP))
				}
				if name == "answer" && marked {
					continue
				}
				if !strings.Contains(sig.SDP, "a=candidate:") {
					t.Errorf("%s carries no candidates: it must be complete", name)
				}
			}
			trickled := 0
			for _, s := range sent[1:] {
				if sig, err := ParseSignal(s); err != nil || sig.Type != SignalCandidate {
					t.Errorf("after the answer: %q, %v", s, err)
				}
				trickled++
			}
			if marked && trickled == 0 && !strings.Contains(sent[0], "a=candidate:") {
				t.Error("the answer to a marked offer had no candidates, in it or after it")
			}
			if !marked && trickled > 0 {
				t.Errorf("%d candidates trickled to an unmarked (prototype) offer", trickled)
			}
		})
	}
}

// plainOfferer connects a plain pion peer, acting like Chromium with the prototype (it offers, and its
// channel writes whole messages), to b.Accept. rewriteAnswer, if non-nil, edits the answer SDP the plain
// peer applies.
func plainOfferer(t *testing.T, b *Transport, rewriteAnswer func(string) string) (*webrtc.PeerConnection, *webrtc.DataChannel, Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	pc, err := plainPionAPI(false).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.GracefulClose() })
	dc, err := pc.CreateDataChannel("prototype", nil)
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	dc.OnOpen(func() { close(opened) })
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	offerSig := Signal{Type: "offer", SDP: pc.LocalDescription().SDP}.String()
	answers := make(chan string, 1)
	type res struct {
		c   Conn
		err error
	}
	accepted := make(chan res, 1)
	go func() {
		c, err := b.Accept(ctx, offerSig, chanSend(answers), nil)
		accepted <- res{c, err}
	}()
	ans, err := ParseSignal(<-answers)
	if err != nil {
		t.Fatal(err)
	}
	if rewriteAnswer != nil {
		ans.SDP = rewriteAnswer(ans.SDP)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		t.Fatal(err)
	}
	r := <-accepted
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { _ = r.c.Close() })
	select {
	case <-opened:
	case <-ctx.Done():
		t.Fatal("plain peer's channel never opened")
	}
	return pc, dc, r.c
}

func TestLargeMessageFromPlainPion(t *testing.T) {
	b := newTestTransport(t, Config{})
	pc, dc, c := plainOfferer(t, b, nil)
	block := make([]byte, 200000)
	_, _ = rand.Read(block)
	if err := dc.Send(block); err != nil {
		t.Fatalf("sending a 200,000-byte message: %v", err)
	}
	if got := pc.SCTP().GetCapabilities().MaxMessageSize; got < 262144 {
		t.Errorf("the plain peer sees our max message size as %d, want >= 262144", got)
	}
	got := make([]byte, len(block))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, block) {
		t.Fatal("the 200,000-byte block arrived corrupted")
	}
	// A small message read with a buffer larger than any message.
	if err := dc.Send(block[:1000]); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20)
	n, err := c.Read(big)
	if err != nil || n != 1000 || !bytes.Equal(big[:n], block[:1000]) {
		t.Fatalf("read %d bytes, err %v", n, err)
	}
}

// A peer ignoring our advertised max-message-size gets a clear error and a closed connection.
func TestOversizedMessageRejected(t *testing.T) {
	b := newTestTransport(t, Config{})
	lie := func(sdp string) string {
		v := sdpMaxMessageSize(sdp)
		return strings.Replace(sdp, "a=max-message-size:"+v, "a=max-message-size:1048576", 1)
	}
	_, dc, c := plainOfferer(t, b, lie)
	if err := dc.Send(make([]byte, 300000)); err != nil {
		t.Fatalf("send: %v", err)
	}
	if _, err := io.ReadFull(c, make([]byte, 300000)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("reading an oversized message: %v, want ErrMessageTooLarge", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after an oversized message: %v, want the connection closed", err)
	}
}

// The browser library may trickle candidates (with or without "type") and send simple-peer control
// messages; the offer then carries none.
func TestTrickleCandidatesAndIgnoredSignals(t *testing.T) {
	a := newTestTransport(t, Config{})
	b := newTestTransport(t, Config{})
	trickle := func(offer string) []string {
		sig, err := ParseSignal(offer)
		if err != nil {
			t.Error(err)
			return []string{offer}
		}
		var kept []string
		var cands []string
		for line := range strings.Lines(sig.SDP) {
			if c, ok := strings.CutPrefix(line, "a=candidate:"); ok {
				cands = append(cands, "candidate:"+strings.TrimRight(c, "\r\n"))
				continue
			}
			kept = append(kept, line)
		}
		if len(cands) == 0 {
			t.Error("offer had no candidates to trickle")
		}
		out := []string{Signal{Type: "offer", SDP: strings.Join(kept, "")}.String(), `{"renegotiate":true}`,
			`{"transceiverRequest":{"kind":"audio"}}`}
		for i, c := range cands {
			mid, idx := "0", uint16(0)
			init := webrtc.ICECandidateInit{Candidate: c, SDPMid: &mid, SDPMLineIndex: &idx}
			s := Signal{Type: "candidate", Candidate: &init}.String()
			if i%2 == 1 {
				s = strings.Replace(s, `"type":"candidate",`, "", 1)
			}
			out = append(out, s)
		}
		// A non-loopback candidate must be dropped in loopback mode, not tried.
		out = append(out, `{"candidate":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.7 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}`)
		return out
	}
	// The answer loses its candidates: only the trickled ones let the peers meet.
	stripAnswer := func(answer string) string {
		sig, err := ParseSignal(answer)
		if err != nil {
			t.Error(err)
			return answer
		}
		var kept []string
		for line := range strings.Lines(sig.SDP) {
			if !strings.HasPrefix(line, "a=candidate:") {
				kept = append(kept, line)
			}
		}
		return Signal{Type: "answer", SDP: strings.Join(kept, "")}.String()
	}
	ca, cb := connectRewrite(t, a, b, trickle, stripAnswer)
	msg := []byte("hello over trickle")
	if _, err := ca.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(cb, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestDialCancelCleansUp(t *testing.T) {
	base := runtime.NumGoroutine()
	a := newTestTransport(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	sent := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		_, err := a.Dial(ctx, chanSend(sent), make(chan string)) // no answer ever comes
		errc <- err
	}()
	<-sent
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial after cancel: %v, want context.Canceled", err)
	}
	// Accept with a cancelled context too.
	b := newTestTransport(t, Config{})
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := b.Accept(ctx2, Signal{Type: "offer", SDP: "v=0\r\n"}.String(), chanSend(make(chan string, 1)), nil); err == nil {
		t.Error("Accept of a broken offer with a cancelled context succeeded")
	}
	if err := a.Close(); err != nil {
		t.Errorf("Transport.Close: %v", err)
	}
	_ = b.Close()
	waitGoroutines(t, base)
}

func TestConnectAndCloseLeavesNoGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		a := newTestTransport(t, Config{})
		b := newTestTransport(t, Config{})
		ca, cb := connect(t, a, b, nil)
		if _, err := ca.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(cb, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		_ = ca.Close()
		_ = cb.Close()
		_ = a.Close()
		_ = b.Close()
	}()
	waitGoroutines(t, base)
}

func TestDialRejectsGarbage(t *testing.T) {
	for _, garbage := range []string{`not json`, `{"type":"answer"}`, `{"type":"answer","sdp":"v=garbage"}`,
		`{"type":"offer","sdp":"v=0"}`, `[1,2]`} {
		a := newTestTransport(t, Config{})
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		recv := make(chan string, 1)
		recv <- garbage
		_, err := a.Dial(ctx, func(context.Context, string) error { return nil }, recv)
		cancel()
		if !errors.Is(err, ErrBadSignal) {
			t.Errorf("Dial with answer %q: error %v, want ErrBadSignal", garbage, err)
		}
	}
	a := newTestTransport(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, offer := range []string{`{"type":"answer","sdp":"x"}`, `{`, strings.Repeat(" ", MaxSignalSize+1)} {
		if _, err := a.Accept(ctx, offer, func(context.Context, string) error { return nil }, nil); !errors.Is(err, ErrBadSignal) {
			t.Errorf("Accept(%.20q): %v, want ErrBadSignal", offer, err)
		}
	}
	// Signalling that ends before the answer is an error, not a hang.
	closed := make(chan string)
	close(closed)
	if _, err := a.Dial(ctx, func(context.Context, string) error { return nil }, closed); err == nil {
		t.Error("Dial with closed signalling succeeded")
	}
	// A failing send fails the dial.
	boom := errors.New("mediator gone")
	if _, err := a.Dial(ctx, func(context.Context, string) error { return boom }, nil); !errors.Is(err, boom) {
		t.Errorf("Dial with failing send: %v", err)
	}
}

func TestCloseUnblocksReadAndWrite(t *testing.T) {
	a := newTestTransport(t, Config{HighWater: 64 << 10, SCTPReceiveBuffer: 128 << 10})
	b := newTestTransport(t, Config{SCTPReceiveBuffer: 128 << 10})
	ca, cb := connect(t, a, b, nil)

	readErr := make(chan error, 1)
	go func() {
		_, err := cb.Read(make([]byte, 100))
		readErr <- err
	}()
	// Nobody reads ca's peer... cb's reader above consumes at most one message, so ca's writes fill the
	// remote window and our own send queue, and Write must block.
	writeErr := make(chan error, 1)
	go func() {
		_, err := ca.Write(make([]byte, 64<<20))
		writeErr <- err
	}()
	if err := <-readErr; err != nil {
		t.Fatalf("first read: %v", err)
	}
	select {
	case err := <-writeErr:
		t.Fatalf("a 64 MiB write to a peer that does not read finished: %v", err)
	case <-time.After(500 * time.Millisecond): // not a timing assertion: only gives Write time to block
	}
	c := ca.(*conn)
	if got := c.dc.BufferedAmount(); got > 64<<10 {
		t.Errorf("blocked Write left %d bytes buffered, more than the 64 KiB window", got)
	}
	if err := ca.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-writeErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("pending Write after Close: %v, want net.ErrClosed", err)
	}

	// A pending Read on a connection whose peer stays silent.
	c2a, c2b := connect(t, newTestTransport(t, Config{}), newTestTransport(t, Config{}), nil)
	_ = c2b
	go func() {
		_, err := c2a.Read(make([]byte, 100))
		readErr <- err
	}()
	time.Sleep(100 * time.Millisecond) // lets Read block first; the assertion holds either way
	_ = c2a.Close()
	if err := <-readErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("pending Read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := c2a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
}

func TestTransportCloseClosesConns(t *testing.T) {
	a := newTestTransport(t, Config{})
	b := newTestTransport(t, Config{})
	ca, cb := connect(t, a, b, nil)
	readErr := make(chan error, 1)
	go func() {
		_, err := ca.Read(make([]byte, 10))
		readErr <- err
	}()
	if err := a.Close(); err != nil {
		t.Errorf("Transport.Close: %v", err)
	}
	if err := <-readErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read on a conn of a closed transport: %v, want net.ErrClosed", err)
	}
	if _, err := cb.Read(make([]byte, 10)); err == nil {
		t.Error("the remote side did not notice the close")
	}
	if _, err := a.Dial(context.Background(), func(context.Context, string) error { return nil }, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial on a closed transport: %v, want ErrClosed", err)
	}
}

func TestSendWindow(t *testing.T) {
	cfg := Config{}.withDefaults()
	if cfg.MinWindow != DefaultMinWindow || cfg.HighWater != DefaultHighWater || cfg.WindowRate != DefaultWindowRate {
		t.Fatalf("defaults: %+v", cfg)
	}
	// The window must leave room for a whole message above its low threshold.
	if c := (Config{MinWindow: 1, HighWater: 1}).withDefaults(); c.MinWindow != 2*minChunk || c.HighWater != 2*minChunk {
		t.Errorf("MinWindow %d, HighWater %d, want %d each", c.MinWindow, c.HighWater, 2*minChunk)
	}
	for _, tc := range []struct{ window, largest, want int }{
		{64 << 10, DefaultWriteChunk, 16 << 10}, // toward a browser
		{1 << 20, DefaultWriteChunk, 64 << 10},  // toward our peers
		{2 * minChunk, DefaultWriteChunk, minChunk},
		{1 << 20, 1000, 1000}, // a configured smaller message
	} {
		if got := chunkFor(tc.window, tc.largest); got != tc.want {
			t.Errorf("messages in a %d-byte window, at most %d: %d, want %d", tc.window, tc.largest, got, tc.want)
		}
	}

	// The receiver keeps the system's socket buffers, so it advertises none: paced as toward a browser.
	ca, cb := connect(t, newTestTransport(t, Config{}), newTestTransport(t, Config{SocketBuffer: -1}), nil)
	c := ca.(*conn).pace
	for _, tc := range []struct {
		rtt  time.Duration
		want int
	}{
		{0, DefaultMinWindow},                // not measured yet
		{time.Millisecond, DefaultMinWindow}, // short path: 16 KiB would be too small
		{20 * time.Millisecond, 20 * DefaultWindowRate / 1000},
		{time.Second, DefaultHighWater},
	} {
		if w := c.windowFor(tc.rtt); w != tc.want {
			t.Errorf("window for a %v round trip: %d, want %d", tc.rtt, w, tc.want)
		}
	}
	// The live window follows what SCTP measured, within the bounds, and sets the low threshold.
	if _, err := ca.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(cb, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.nRTT, c.minRTT = 0, time.Second // as if the channel-open message had taken a second
	if w := c.updateWindowLocked(); w != DefaultMinWindow {
		t.Errorf("window %d after the first round-trip sample, want %d until %d samples", w, DefaultMinWindow, rttSamples)
	}
	var w int
	for range rttSamples {
		w = c.updateWindowLocked()
	}
	rtt := c.minRTT
	c.mu.Unlock()
	if rtt <= 0 || rtt == time.Second || w != c.windowFor(rtt) {
		t.Errorf("after 1 MiB: smallest round trip %v, window %d", rtt, w)
	}
	if thr := ca.(*conn).dc.BufferedAmountLowThreshold(); thr != uint64(w/2) {
		t.Errorf("low threshold %d, want half the window %d (one channel)", thr, w/2)
	}
}

// TestSendWindowTowardOurPeers: a peer of ours says in its description what its socket holds, and the
// window toward it starts at half that (capped at HighWater) instead of the browser-safe minimum; a peer
// that says nothing gets the minimum.
func TestSendWindowTowardOurPeers(t *testing.T) {
	cfg := Config{HighWater: 8 << 20}
	a, b := newTestTransport(t, cfg), newTestTransport(t, cfg)
	if runtime.GOOS == "linux" && b.rcvbuf < 2*DefaultMinWindow {
		t.Fatalf("our sockets hold %d bytes, want at least %d (SO_RCVBUF as Linux reports it)", b.rcvbuf, 2*DefaultMinWindow)
	}
	ca, cb := connect(t, a, b, nil)
	want := min(max(b.rcvbuf/2, DefaultMinWindow), 8<<20)
	if w := ca.(*conn).pace.windowFor(time.Millisecond); w != want {
		t.Errorf("window toward a peer holding %d bytes: %d, want %d", b.rcvbuf, w, want)
	}
	if w := cb.(*conn).pace.windowFor(time.Millisecond); w != min(max(a.rcvbuf/2, DefaultMinWindow), 8<<20) {
		t.Errorf("window back toward a peer holding %d bytes: %d", a.rcvbuf, w)
	}

	// A remote that advertises nothing (a browser, the prototype) is paced from the small floor (the
	// window may start above it when ICE measured a longer round trip, as on a loaded machine).
	plain := newTestTransport(t, Config{SocketBuffer: -1})
	if plain.rcvbuf != 0 {
		t.Fatalf("a transport with the system's buffers advertises %d", plain.rcvbuf)
	}
	cp, _ := connect(t, a, plain, nil)
	if c := cp.(*conn).pace; c.windowFor(time.Millisecond) != DefaultMinWindow || c.window < DefaultMinWindow {
		t.Errorf("window toward a peer that says nothing: %d (now %d), want %d", c.windowFor(time.Millisecond), c.window, DefaultMinWindow)
	}
	// What a peer claims is bounded by our own cap.
	if w := windowFloor(Config{}.withDefaults(), maxRecvBuffer); w != DefaultHighWater {
		t.Errorf("window toward a peer claiming %d bytes: %d, want the cap %d", maxRecvBuffer, w, DefaultHighWater)
	}
}

// TestWriteEndsWhenRemoteAborts: a Write blocked on a full send window returns an error once the remote
// tears the connection down, without a local Close (issue 11: writes stayed blocked until then).
func TestWriteEndsWhenRemoteAborts(t *testing.T) {
	for _, how := range []string{"remote closes its connection", "remote transport closes"} {
		t.Run(how, func(t *testing.T) {
			a := newTestTransport(t, Config{HighWater: 64 << 10, SCTPReceiveBuffer: 128 << 10})
			b := newTestTransport(t, Config{SCTPReceiveBuffer: 128 << 10})
			ca, cb := connect(t, a, b, nil)
			writeErr := make(chan error, 1)
			go func() {
				_, err := ca.Write(make([]byte, 64<<20)) // b never reads: this blocks
				writeErr <- err
			}()
			select {
			case err := <-writeErr:
				t.Fatalf("a 64 MiB write to a peer that does not read finished: %v", err)
			case <-time.After(300 * time.Millisecond): // only gives Write time to block
			}
			if how == "remote closes its connection" {
				_ = cb.Close()
			} else {
				_ = b.Close()
			}
			select {
			case err := <-writeErr:
				if err == nil {
					t.Fatal("Write returned no error after the remote went away")
				}
				t.Logf("Write ended: %v", err)
			case <-time.After(testTimeout):
				t.Fatal("Write still blocked after the remote closed the connection")
			}
		})
	}
}

package rtc

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// testTimeout is generous: the machine is shared and -race is slow.
const testTimeout = 60 * time.Second

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{}, &slog.HandlerOptions{Level: slog.LevelError}))
}

type testWriter struct{}

func (testWriter) Write(p []byte) (int, error) { return len(p), nil }

func newTestTransport(tb testing.TB, cfg Config) *Transport {
	tb.Helper()
	cfg.Loopback = true
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	tr, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tr.Close() })
	return tr
}

// chanSend returns a send func delivering into ch.
func chanSend(ch chan<- string) func(context.Context, string) error {
	return func(ctx context.Context, s string) error {
		select {
		case ch <- s:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// connect dials from a and accepts on b over in-memory signalling. rewriteOffer, if non-nil, turns the
// offer into the signals b receives (the first must be the offer).
func connect(tb testing.TB, a, b *Transport, rewriteOffer func(string) []string) (Conn, Conn) {
	return connectRewrite(tb, a, b, rewriteOffer, nil)
}

// connectRewrite is connect with rewriteAnswer, if non-nil, applied to b's answer.
func connectRewrite(tb testing.TB, a, b *Transport, rewriteOffer func(string) []string,
	rewriteAnswer func(string) string) (Conn, Conn) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	a2b := make(chan string, 64)
	b2a := make(chan string, 64)
	raw := make(chan string, 1)
	type result struct {
		c   Conn
		err error
	}
	acc := make(chan result, 1)
	go func() {
		var offer string
		select {
		case offer = <-raw:
		case <-ctx.Done():
			acc <- result{err: ctx.Err()}
			return
		}
		sigs := []string{offer}
		if rewriteOffer != nil {
			sigs = rewriteOffer(offer)
		}
		for _, s := range sigs[1:] {
			a2b <- s
		}
		send := chanSend(b2a)
		if rewriteAnswer != nil {
			send = func(ctx context.Context, s string) error { return chanSend(b2a)(ctx, rewriteAnswer(s)) }
		}
		c, err := b.Accept(ctx, sigs[0], send, a2b)
		acc <- result{c, err}
	}()
	ca, err := a.Dial(ctx, chanSend(raw), b2a)
	if err != nil {
		tb.Fatalf("Dial: %v", err)
	}
	r := <-acc
	if r.err != nil {
		tb.Fatalf("Accept: %v", r.err)
	}
	tb.Cleanup(func() { _ = ca.Close(); _ = r.c.Close() })
	return ca, r.c
}

// waitGoroutines waits until the goroutine count falls back to at most base (pion stops some of its
// goroutines asynchronously) and fails with a dump if it never does.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines leaked: %d now, %d before\n%s", n, base, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// plainPionAPI is pion with default settings except that ICE is held to loopback, so tests send
// nothing beyond 127.0.0.1.
func plainPionAPI(detach bool) *webrtc.API {
	var se webrtc.SettingEngine
	if detach {
		se.DetachDataChannels()
	}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(isLoopback4)
	se.SetRemoteIPFilter(isLoopback4)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	lo := loopbackInterfaces()
	se.SetInterfaceFilter(func(n string) bool { return lo[n] })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

func sdpMaxMessageSize(sdp string) string {
	for line := range strings.Lines(sdp) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=max-message-size:"); ok {
			return v
		}
	}
	return ""
}

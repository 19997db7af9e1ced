package rtc

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// stunProbe is a loopback UDP socket that counts the STUN binding requests it receives (and answers
// none): proof that a peer connection used it as an ICE server.
type stunProbe struct {
	conn     net.PacketConn
	requests atomic.Int32
}

func newSTUNProbe(t *testing.T) *stunProbe {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stunProbe{conn: c}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if m.Decode() == nil && m.Type == stun.BindingRequest {
				p.requests.Add(1)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return p
}

func (p *stunProbe) url() string { return "stun:" + p.conn.LocalAddr().String() }

// TestExtraICEServersAskedPerConnection: servers learned at run time are asked for at each new peer
// connection and used beside the configured ones.
func TestExtraICEServersAskedPerConnection(t *testing.T) {
	fixed, extra := newSTUNProbe(t), newSTUNProbe(t)
	var calls atomic.Int32
	tr := newTestTransport(t, Config{
		ICEServers: []webrtc.ICEServer{{URLs: []string{fixed.url()}}},
		ExtraICEServers: func() []webrtc.ICEServer {
			calls.Add(1)
			return []webrtc.ICEServer{{URLs: []string{extra.url()}}}
		},
	})
	for i := 1; i <= 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		sent := make(chan string, 1)
		go func() { <-sent; cancel() }()
		_, _ = tr.Dial(ctx, chanSend(sent), make(chan string))
		cancel()
		if got := calls.Load(); got != int32(i) {
			t.Fatalf("ExtraICEServers called %d times for %d connections", got, i)
		}
	}
	deadline := time.Now().Add(testTimeout)
	for fixed.requests.Load() == 0 || extra.requests.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("STUN requests: configured server %d, extra server %d; want both asked",
				fixed.requests.Load(), extra.requests.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

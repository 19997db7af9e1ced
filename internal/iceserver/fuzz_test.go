package iceserver

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// FuzzDemux: any datagram lands on the side its kind names, or is dropped
// and counted; never both, never a panic.
func FuzzDemux(f *testing.F) {
	req, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	alloc, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest),
		stun.NewUsername("1:aaaa"), stun.NewRealm("p2pcdn"))
	for _, seed := range [][]byte{
		req.Raw, alloc.Raw,
		[]byte("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe"),
		{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4},
		{'d', '1', ':'}, {0x16, 3, 1}, {}, {0xff},
	} {
		f.Add(seed)
	}
	addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := NewDemux(fakePacketConn{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		d.route(b, addr)
		stunGot, dhtGot := len(d.stun.queue), len(d.dht.queue)
		dropped := count(d.dropped.WithLabelValues("unknown"))
		if stunGot+dhtGot+int(dropped) != 1 {
			t.Fatalf("%x: stun %d, dht %d, dropped %v: want exactly one", b, stunGot, dhtGot, dropped)
		}
		k := classify(b)
		switch {
		case stunGot == 1:
			if k != kindSTUN && k != kindChannelData {
				t.Fatalf("%x (%v) went to the STUN side", b, k)
			}
			if k == kindSTUN && (b[0]&0xC0 != 0 || len(b) < stunHeaderLen) {
				t.Fatalf("%x: not a STUN header", b)
			}
			pk := <-d.stun.queue
			if !bytes.Equal(*pk.b, b) {
				t.Fatal("datagram changed on the way")
			}
		case dhtGot == 1:
			if b[0] != 'd' || k != kindKRPC {
				t.Fatalf("%x went to the DHT side", b)
			}
		}
	})
}

// FuzzUDPFront: whatever arrives, the STUN/TURN front never panics, and the
// only thing it ever sends is a binding success for the request's
// transaction, carrying the sender's address.
func FuzzUDPFront(f *testing.F) {
	req, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	plain, _ := stun.Build(stun.TransactionID, stun.BindingRequest)
	ind, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodBinding, stun.ClassIndication))
	alloc, _ := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest))
	for _, seed := range [][]byte{req.Raw, plain.Raw, ind.Raw, alloc.Raw, {0x40, 0, 0, 0}, []byte("d1:a")} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	addr := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 4242}
	f.Fuzz(func(t *testing.T, b []byte, turnOn bool) {
		pc := &recordingConn{}
		s, err := New(Config{PacketConn: pc, TURN: turnOn, RelayIP: mustAddr("192.0.2.1"), Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		front := &udpFront{PacketConn: pc, s: s}
		forTURN := front.handle(b, addr)
		if forTURN && !turnOn {
			t.Fatal("handed to TURN while TURN is off")
		}
		if forTURN && classify(b) != kindSTUN && classify(b) != kindChannelData {
			t.Fatalf("%x handed to TURN", b)
		}
		for _, w := range pc.written {
			resp := &stun.Message{Raw: w}
			if err := resp.Decode(); err != nil {
				t.Fatalf("sent a malformed message: %v", err)
			}
			if resp.Type != stun.BindingSuccess || !bytes.Equal(resp.TransactionID[:], b[8:20]) {
				t.Fatalf("sent %v for %x", resp.Type, b)
			}
			var xa stun.XORMappedAddress
			if err := xa.GetFrom(resp); err != nil || !xa.IP.Equal(addr.IP) || xa.Port != addr.Port {
				t.Fatalf("mapped address %v, %v", xa, err)
			}
		}
	})
}

// fakePacketConn is a socket that is never read or written.
type fakePacketConn struct{}

func (fakePacketConn) ReadFrom([]byte) (int, net.Addr, error)    { return 0, nil, net.ErrClosed }
func (fakePacketConn) WriteTo(p []byte, _ net.Addr) (int, error) { return len(p), nil }
func (fakePacketConn) Close() error                              { return nil }
func (fakePacketConn) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 3478}
}
func (fakePacketConn) SetDeadline(time.Time) error      { return nil }
func (fakePacketConn) SetReadDeadline(time.Time) error  { return nil }
func (fakePacketConn) SetWriteDeadline(time.Time) error { return nil }

// recordingConn records what is written to it.
type recordingConn struct {
	fakePacketConn
	mu      sync.Mutex
	written [][]byte
}

func (c *recordingConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	c.written = append(c.written, append([]byte(nil), p...))
	c.mu.Unlock()
	return len(p), nil
}

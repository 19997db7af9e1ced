package iceserver

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2"
	alog "github.com/anacrolix/log"
	"github.com/pion/stun/v4"
	"github.com/prometheus/client_golang/prometheus"
)

func bindingRequest(t testing.TB) []byte {
	t.Helper()
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want kind
	}{
		{"binding request", bindingRequest(t), kindSTUN},
		{"krpc query", []byte("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe"), kindKRPC},
		{"krpc reply with ip", []byte("d2:ip6:abcdef1:rd2:id20:aaaaaaaaaaaaaaaaaaaae1:t2:aa1:y1:re"), kindKRPC},
		{"channel data", []byte{0x40, 0x01, 0x00, 0x02, 'h', 'i'}, kindChannelData},
		{"channel data 0x64xx", []byte{'d', 0x01, 0x00, 0x01, 'x'}, kindChannelData},
		{"channel data claiming more than it has", []byte{0x40, 0x01, 0x00, 0x09, 'h'}, kindUnknown},
		{"stun without cookie", append([]byte{0, 1, 0, 0, 1, 2, 3, 4}, make([]byte, 12)...), kindUnknown},
		{"stun with a wrong length", append(bindingRequest(t), 0, 0, 0, 0), kindUnknown},
		{"tls", []byte{0x16, 0x03, 0x01, 0x00, 0x10}, kindUnknown},
		{"rtp", []byte{0x80, 0x60, 0, 1}, kindUnknown},
		{"empty", nil, kindUnknown},
		{"one d", []byte("d"), kindUnknown},
	}
	for _, tt := range tests {
		if got := classify(tt.b); got != tt.want {
			t.Errorf("%s: classify = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// newTestDemux runs a Demux over a loopback socket until the test ends.
func newTestDemux(t testing.TB) (*Demux, net.PacketConn) {
	t.Helper()
	pc := listenUDP(t)
	d, err := NewDemux(pc, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Demux.Run: %v", err)
		}
	})
	return d, pc
}

func TestDemuxRoutesAndDrops(t *testing.T) {
	d, pc := newTestDemux(t)
	cl := listenUDP(t)
	send := func(b []byte) {
		if _, err := cl.WriteTo(b, pc.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	send([]byte("garbage!"))
	send(bindingRequest(t))
	send([]byte("d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe"))

	buf := make([]byte, 1500)
	d.STUN().SetReadDeadline(time.Now().Add(waitTimeout))
	n, from, err := d.STUN().ReadFrom(buf)
	if err != nil || classify(buf[:n]) != kindSTUN || from.String() != cl.LocalAddr().String() {
		t.Fatalf("STUN side read %q from %v, %v", buf[:n], from, err)
	}
	d.DHT().SetReadDeadline(time.Now().Add(waitTimeout))
	n, _, err = d.DHT().ReadFrom(buf)
	if err != nil || buf[0] != 'd' {
		t.Fatalf("DHT side read %q, %v", buf[:n], err)
	}
	eventually(t, "the garbage counted", func() bool { return count(d.dropped.WithLabelValues("unknown")) == 1 })

	// Writes from either side leave through the shared socket.
	if _, err := d.DHT().WriteTo([]byte("d1:rde"), cl.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	cl.SetReadDeadline(time.Now().Add(waitTimeout))
	if n, from, err := cl.ReadFrom(buf); err != nil || string(buf[:n]) != "d1:rde" || from.String() != pc.LocalAddr().String() {
		t.Fatalf("client got %q from %v, %v", buf[:n], from, err)
	}

	// A deadline in the past times out at once; one set while blocked wakes
	// the reader.
	d.STUN().SetReadDeadline(time.Now().Add(-time.Second))
	if _, _, err := d.STUN().ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	d.STUN().SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() { _, _, err := d.STUN().ReadFrom(buf); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	d.STUN().SetReadDeadline(time.Now())
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blocked read after SetReadDeadline: %v", err)
	}
	// Closing one side ends its reads only.
	d.STUN().Close()
	if _, _, err := d.STUN().ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	send([]byte("d1:ad2:id20:bbbbbbbbbbbbbbbbbbbbe1:q4:ping1:t2:bb1:y1:qe"))
	d.DHT().SetReadDeadline(time.Now().Add(waitTimeout))
	if _, _, err := d.DHT().ReadFrom(buf); err != nil {
		t.Fatalf("DHT side after the STUN side closed: %v", err)
	}
}

func TestDemuxQueueBounded(t *testing.T) {
	pc := listenUDP(t)
	d, err := NewDemux(pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads the STUN side: route directly, past the queue.
	req := bindingRequest(t)
	for i := 0; i < DemuxQueue+10; i++ {
		d.route(req, pc.LocalAddr())
	}
	if got := count(d.dropped.WithLabelValues("queue_full")); got != 10 {
		t.Fatalf("dropped %v, want 10", got)
	}
}

// STUN binding on the port the DHT uses, and the DHT still answering there.
func TestSTUNBindingBesideDHT(t *testing.T) {
	d, pc := newTestDemux(t)
	start(t, Config{PacketConn: d.STUN()})

	cfg := dht.NewDefaultServerConfig()
	cfg.Conn = d.DHT()
	cfg.NoSecurity = true
	cfg.StartingNodes = func() ([]dht.Addr, error) { return nil, nil }
	cfg.Logger = cfg.Logger.WithFilterLevel(alog.Never)
	node, err := dht.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()

	// A binding request with pion/stun's client, from a socket of its own.
	c, err := stun.Dial("udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mapped stun.XORMappedAddress
	var cbErr error
	err = c.Do(stun.MustBuild(stun.TransactionID, stun.BindingRequest), func(ev stun.Event) {
		if ev.Error != nil {
			cbErr = ev.Error
			return
		}
		cbErr = mapped.GetFrom(ev.Message)
	})
	if err != nil || cbErr != nil {
		t.Fatalf("binding: %v, %v", err, cbErr)
	}
	if mapped.IP.String() != "127.0.0.1" || mapped.Port == 0 {
		t.Fatalf("mapped address %v", mapped)
	}

	// Another DHT node pings ours on the same port.
	cfg2 := dht.NewDefaultServerConfig()
	cfg2.Conn = listenUDP(t)
	cfg2.NoSecurity = true
	cfg2.StartingNodes = func() ([]dht.Addr, error) { return nil, nil }
	cfg2.Logger = cfg2.Logger.WithFilterLevel(alog.Never)
	other, err := dht.NewServer(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	res := other.Ping(pc.LocalAddr().(*net.UDPAddr))
	if res.Err != nil {
		t.Fatalf("DHT ping through the shared port: %v", res.Err)
	}
	if id := res.Reply.SenderID(); id == nil || !bytes.Equal(id[:], func() []byte { b := node.ID(); return b[:] }()) {
		t.Fatalf("ping answered by %v, want our node %x", id, node.ID())
	}
}

// TestDemuxLeavesSidesToTheirUsers: when Run ends, a side's reader gets no
// error until its user closes the side. The DHT library panics on a read
// error it did not cause by closing, and the mediator stops the Demux and
// the DHT on one context, in no set order.
func TestDemuxLeavesSidesToTheirUsers(t *testing.T) {
	pc := listenUDP(t)
	d, err := NewDemux(pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	buf := make([]byte, 64)
	for _, side := range []net.PacketConn{d.DHT(), d.STUN()} {
		side.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := side.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a side's read after Run ended: %v, want to wait for its own Close", err)
		}
		side.Close()
		if _, _, err := side.ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("a side's read after its Close: %v", err)
		}
	}
}

package rtc

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestPacerStartsFromICE: the send window starts fitted to the round trip ICE measured (a short path:
// the floor), and toward a remote that advertises no socket buffer (a browser) the connection's packets
// are paced only while the window exceeds the floor, at the window's rate, until the peer closes.
func TestPacerStartsFromICE(t *testing.T) {
	a, b := newTestTransport(t, Config{}), newTestTransport(t, Config{SocketBuffer: -1})
	ca, _ := connect(t, a, b, nil)
	p := ca.(*conn).pace
	p.mu.Lock()
	if p.minRTT <= 0 || p.nRTT != rttSamples {
		t.Errorf("window not fitted to ICE's round trip: smallest %v after %d samples", p.minRTT, p.nRTT)
	}
	if p.dests != a.paced || !p.dst.IsValid() {
		t.Fatalf("toward a remote without rcvbuf: pacing %v to %v, want the transport's registry and the remote", p.dests, p.dst)
	}
	// As if ICE had measured 1 ms (loopback on a quiet machine; a loaded one measures more).
	p.minRTT = time.Millisecond
	p.window = p.windowFor(p.minRTT)
	p.paceLocked()
	if p.window != p.minWin || p.pacing {
		t.Errorf("1 ms: window %d (floor %d), paced %v; want the floor, unpaced", p.window, p.minWin, p.pacing)
	}
	// As if ICE had measured 80 ms.
	p.minRTT = 80 * time.Millisecond
	p.window = p.windowFor(p.minRTT)
	p.paceLocked()
	a.paced.mu.RLock()
	l := a.paced.m[p.dst]
	a.paced.mu.RUnlock()
	p.mu.Unlock()
	if l == nil {
		t.Fatal("an 80 ms path to a browser is not paced")
	}
	if want := float64(p.window) / 0.08; float64(l.Limit()) != want || l.Burst() != DefaultMinWindow/4 {
		t.Errorf("paced at %v B/s, bursts %d; want %v, %d", l.Limit(), l.Burst(), want, DefaultMinWindow/4)
	}
	ca.(*conn).p.Close()
	a.paced.mu.RLock()
	n := len(a.paced.m)
	a.paced.mu.RUnlock()
	if n != 0 {
		t.Errorf("%d destinations still paced after the peer closed", n)
	}

	// Toward our own peers (an advertised buffer) nothing is paced.
	cb, _ := connect(t, a, newTestTransport(t, Config{}), nil)
	if q := cb.(*conn).pace; q.dests != nil {
		t.Errorf("pacing toward a peer of ours")
	}
}

// TestPacedSocket: writes to a paced destination leave no faster than its rate after the first burst,
// others at once, and the bytes arrive intact.
func TestPacedSocket(t *testing.T) {
	n, err := newBufferedNet(0, &pacedDests{})
	if err != nil {
		t.Fatal(err)
	}
	send, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	if _, ok := send.(interface {
		WriteToAddrPort([]byte, netip.AddrPort) (int, error)
	}); !ok {
		t.Fatalf("%T hides the AddrPort API pion's ICE uses", send)
	}
	recv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	dst := recv.LocalAddr().(*net.UDPAddr)

	const size, count = 1000, 20
	write := func() time.Duration {
		start := time.Now()
		for i := range count {
			msg := bytes.Repeat([]byte{byte(i)}, size)
			if _, err := send.WriteTo(msg, dst); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2*size)
			_ = recv.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, _, err := recv.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:got], msg) {
				t.Fatalf("datagram %d arrived altered", i)
			}
		}
		return time.Since(start)
	}
	write() // unpaced: nothing to check but the bytes
	// 5 datagrams in a burst, then 100 kB/s: the other 15 need at least 150 ms.
	n.paced.set(dst.AddrPort(), 100e3, 5*size)
	if took := write(); took < 150*time.Millisecond {
		t.Errorf("20 paced datagrams left in %v, want at least 150 ms at 100 kB/s after a 5 kB burst", took)
	}
	n.paced.remove(dst.AddrPort())
}

package rtc

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5"
	"golang.org/x/time/rate"
)

// Packet pacing toward browsers on long paths (see newPacer). The send window keeps what is in flight
// within a bandwidth-delay product, but SCTP sends what its congestion window allows at once, and its
// acknowledgements come back as clumped as the data went out: in slow start each round trip's burst is
// twice the last. Where no bottleneck link spaces the packets out (a fast path, or a delay line), a
// burst larger than Chromium's 128 KiB socket (about 55 datagrams) lands at once and the kernel drops
// what does not fit; pion then recovers slowly (doc.go). Pacing Write above SCTP cannot stop that; the
// packets themselves must be spaced, so the UDP sockets of our ICE candidates hold each write to a
// paced destination until its token bucket allows it. The bucket holds a quarter of MinWindow (16 KiB,
// a burst the socket takes even from a busy browser) and refills at the window's rate (window /
// smallest round trip), so a full window still goes out within a round trip. Only destinations
// registered by a pacer are paced: browsers (no advertised buffer) whose window is larger than
// MinWindow. Our native peers and short paths are never slowed.
//
// Measured in internal/e2e/wan, a page 80 ms away fetching 1 MB from a seeder, 6 runs each,
// interleaved in pairs of 3, on a loaded machine: unpaced 20-129 datagrams dropped at the page's
// socket per fetch, median 1.20 s; paced so, 0-1 dropped, median 1.07 s. Bursts of 32 KiB at twice
// the window's rate still lost 3-89 (median 1.25 s).

// pacedDests is a Transport's paced destinations.
type pacedDests struct {
	n  atomic.Int32 // len(m), read without the lock on every packet
	mu sync.RWMutex
	m  map[netip.AddrPort]*rate.Limiter
}

// maxPacedDests bounds the registry; a destination beyond it is simply not paced.
const maxPacedDests = 4096

// set paces packets to dst at bytesPerSec with bursts of burst bytes.
func (d *pacedDests) set(dst netip.AddrPort, bytesPerSec float64, burst int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if l := d.m[dst]; l != nil {
		l.SetLimit(rate.Limit(bytesPerSec))
		l.SetBurst(burst)
		return
	}
	if d.m == nil {
		d.m = make(map[netip.AddrPort]*rate.Limiter)
	}
	if len(d.m) < maxPacedDests {
		d.m[dst] = rate.NewLimiter(rate.Limit(bytesPerSec), burst)
		d.n.Store(int32(len(d.m)))
	}
}

// remove stops pacing packets to dst.
func (d *pacedDests) remove(dst netip.AddrPort) {
	d.mu.Lock()
	delete(d.m, dst)
	d.n.Store(int32(len(d.m)))
	d.mu.Unlock()
}

// wait blocks until n bytes may leave for dst.
func (d *pacedDests) wait(dst netip.AddrPort, n int) {
	if d.n.Load() == 0 {
		return
	}
	d.mu.RLock()
	l := d.m[netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())]
	d.mu.RUnlock()
	if l == nil {
		return
	}
	r := l.ReserveN(time.Now(), n)
	if !r.OK() { // larger than a burst: not ours to hold
		return
	}
	if delay := r.Delay(); delay > 0 {
		time.Sleep(delay)
	}
}

// pacedUDP is an ICE candidate's socket whose writes to paced destinations wait their turn. pion writes
// from one goroutine per association (SCTP's write loop, outside its locks), so the wait spaces that
// association's packets without holding anything else up.
type pacedUDP struct {
	transport.UDPConn
	dests *pacedDests
}

func (c *pacedUDP) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok {
		c.dests.wait(ua.AddrPort(), len(b))
	}
	return c.UDPConn.WriteTo(b, addr)
}

func (c *pacedUDP) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	if addr != nil {
		c.dests.wait(addr.AddrPort(), len(b))
	}
	return c.UDPConn.WriteToUDP(b, addr)
}

// udpAddrPort is the allocation-free API of *net.UDPConn, which pion's ICE uses when a socket offers it
// (as ReadFromAddrPort and WriteToAddrPort).
type udpAddrPort interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// pacedAddrPortUDP is pacedUDP over a socket with the AddrPort API, which it keeps offering.
type pacedAddrPortUDP struct {
	pacedUDP
	ap udpAddrPort
}

func (c *pacedAddrPortUDP) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.ap.ReadFromUDPAddrPort(b)
}

func (c *pacedAddrPortUDP) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	c.dests.wait(addr, len(b))
	return c.ap.WriteToUDPAddrPort(b, addr)
}

// paceUDP wraps c so that its writes to dests are paced.
func paceUDP(c transport.UDPConn, dests *pacedDests) transport.UDPConn {
	p := pacedUDP{UDPConn: c, dests: dests}
	if ap, ok := c.(udpAddrPort); ok {
		return &pacedAddrPortUDP{pacedUDP: p, ap: ap}
	}
	return &p
}

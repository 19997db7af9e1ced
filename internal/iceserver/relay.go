package iceserver

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/pion/turn/v5"
	"golang.org/x/time/rate"
)

var (
	errRequestedPort = errors.New("iceserver: relays on a requested port are not offered")
	errTCPRelay      = errors.New("iceserver: TCP relays (RFC 6062) are not offered")
	errFamily        = errors.New("iceserver: no relay address of the requested family")
)

// relays implements turn.RelayAddressGenerator: UDP relay sockets bound to
// the listen address and advertised as the relay IP, each wrapped to count
// and rate limit its bytes and to refuse the server's own ports.
type relays struct {
	s *Server
}

func (r relays) Validate() error { return nil }

func (r relays) AllocatePacketConn(cfg turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	s := r.s
	if cfg.RequestedPort != 0 {
		s.metrics.refuse(refuseRequestedPort)
		return nil, nil, errRequestedPort
	}
	if (cfg.Network == "udp6") != s.relayIP.Is6() {
		s.metrics.refuse(refuseFamily)
		return nil, nil, errFamily
	}
	pc, err := net.ListenPacket(cfg.Network, net.JoinHostPort(s.relayBind.String(), "0"))
	if err != nil {
		return nil, nil, err
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	s.own.addPort(port)
	rc := &relayConn{PacketConn: pc, s: s, port: port}
	if s.cfg.RelayBytesPerAllocation > 0 {
		rc.lim = rate.NewLimiter(rate.Limit(s.cfg.RelayBytesPerAllocation), burstFor(s.cfg.RelayBytesPerAllocation))
	}
	return rc, &net.UDPAddr{IP: s.relayIP.AsSlice(), Port: port}, nil
}

func (r relays) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	r.s.metrics.refuse(refuseTCPRelay)
	return nil, nil, errTCPRelay
}

func (r relays) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	r.s.metrics.refuse(refuseTCPRelay)
	return nil, errTCPRelay
}

// burstFor is the token bucket depth for a byte rate: a tenth of a second,
// and at least a few full datagrams.
func burstFor(bytesPerSecond int64) int {
	return int(max(bytesPerSecond/10, 64<<10))
}

// relayConn is one allocation's relay socket.
type relayConn struct {
	net.PacketConn
	s    *Server
	port int
	lim  *rate.Limiter // this allocation's share; nil: only the global limit
}

// allow takes n bytes from this allocation's and the server's budgets.
func (c *relayConn) allow(n int) bool {
	now := time.Now()
	if c.lim != nil && !c.lim.AllowN(now, n) {
		return false
	}
	return c.s.relayLimit == nil || c.s.relayLimit.AllowN(now, n)
}

// ReadFrom returns the next datagram from a peer within budget; others are
// dropped (UDP may drop) and counted.
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if !c.allow(n) {
			c.s.metrics.droppedRate.Add(float64(n))
			continue
		}
		c.s.metrics.fromPeer.Add(float64(n))
		return n, addr, nil
	}
}

// WriteTo sends a client's datagram to a peer, unless the peer is this
// server itself or the budget is spent; dropped datagrams report success,
// as a lost datagram would.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil || c.s.own.is(ap) {
		c.s.metrics.refuse(refuseOwnPort)
		c.s.metrics.droppedOwn.Add(float64(len(p)))
		return len(p), nil
	}
	if !c.allow(len(p)) {
		c.s.metrics.droppedRate.Add(float64(len(p)))
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	c.s.metrics.toPeer.Add(float64(n))
	return n, err
}

func (c *relayConn) Close() error {
	err := c.PacketConn.Close()
	if err == nil {
		c.s.own.removePort(c.port)
	}
	return err
}

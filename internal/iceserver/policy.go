package iceserver

import (
	"net"
	"net/netip"
	"sync"
)

var (
	cgnat    = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598, private in all but name
	thisNet  = netip.MustParsePrefix("0.0.0.0/8")     // "this network": never a peer
	bcast    = netip.MustParseAddr("255.255.255.255")
	v4mapped = netip.MustParsePrefix("::ffff:0:0/96")
)

// peerRefusal returns why relaying toward ip is refused, or "" when it is
// allowed. A TURN server on a public host must not become a way into its own
// machine or network (RFC 8656 section 21.3).
func (s *Server) peerRefusal(ip netip.Addr) string {
	if v4mapped.Contains(ip) {
		ip = ip.Unmap()
	}
	switch {
	case !ip.IsValid() || ip.IsUnspecified() || thisNet.Contains(ip):
		return refuseUnspecified
	case ip.IsLoopback():
		if s.cfg.AllowLoopbackPeers {
			return ""
		}
		return refuseLoopback
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return refuseLinkLocal
	case ip.IsMulticast() || ip == bcast:
		return refuseMulticast
	case (ip.IsPrivate() || cgnat.Contains(ip)) && !s.cfg.AllowPrivatePeers:
		return refusePrivate
	}
	return ""
}

// ownAddrs knows this host's addresses and the server's ports, so relayed
// packets toward the server itself (its STUN/TURN, HTTP and relay ports) are
// dropped: a client could otherwise make the server talk to itself.
type ownAddrs struct {
	ips   map[netip.Addr]bool // fixed after newOwnAddrs
	mu    sync.Mutex
	ports map[int]int // port -> how many sockets of ours use it
}

func newOwnAddrs(extra ...netip.Addr) *ownAddrs {
	o := &ownAddrs{ips: map[netip.Addr]bool{}, ports: map[int]int{}}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				o.ips[p.Addr().Unmap()] = true
			}
		}
	}
	for _, a := range extra {
		if a.IsValid() && !a.IsUnspecified() {
			o.ips[a.Unmap()] = true
		}
	}
	return o
}

func (o *ownAddrs) addPort(port int) {
	o.mu.Lock()
	o.ports[port]++
	o.mu.Unlock()
}

func (o *ownAddrs) removePort(port int) {
	o.mu.Lock()
	if o.ports[port]--; o.ports[port] <= 0 {
		delete(o.ports, port)
	}
	o.mu.Unlock()
}

// is reports whether ap is one of ours: a port of ours on an address of
// this host.
func (o *ownAddrs) is(ap netip.AddrPort) bool {
	if !o.ips[ap.Addr().Unmap()] {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ports[int(ap.Port())] > 0
}

package clientip

import (
	"net"
	"net/netip"
	"sync"
)

// LimitListener returns a listener that accepts at most max open connections
// per client address (IPv6 per /64) from ln and closes the others as soon as
// they are accepted, calling refused (if not nil) for each. Connections from
// exempt addresses (trusted proxies, which carry many clients) are not
// counted. max <= 0 returns ln unchanged.
func LimitListener(ln net.Listener, max int, exempt Proxies, refused func(net.Addr)) net.Listener {
	if max <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, conns: NewCounter(max), exempt: exempt, refused: refused}
}

type limitListener struct {
	net.Listener
	conns   *Counter
	exempt  Proxies
	refused func(net.Addr)
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a := FromAddrString(c.RemoteAddr().String())
		if !a.IsValid() || l.exempt.Trusted(a) {
			return c, nil
		}
		if !l.conns.Acquire(a, 1) {
			c.Close()
			if l.refused != nil {
				l.refused(c.RemoteAddr())
			}
			continue
		}
		return &countedConn{Conn: c, addr: a, conns: l.conns}, nil
	}
}

// countedConn gives its slot back once, at the first Close. net/http hands
// this same value to a websocket upgrade (Hijack), so a hijacked connection
// is counted until the websocket closes it.
type countedConn struct {
	net.Conn
	addr  netip.Addr
	conns *Counter
	once  sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.conns.Release(c.addr, 1) })
	return c.Conn.Close()
}

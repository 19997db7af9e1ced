package iceserver

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// streamListener hands pion/turn the TURN connections over TCP and TLS,
// bounded in number (in total and per client IP), each closed after
// StreamIdleTimeout without input, and all closed when the server stops
// (pion closes only its listener).
type streamListener struct {
	net.Listener
	max, maxPerIP int
	refused       func() // counts a connection refused over the caps

	mu    sync.Mutex
	conns map[*streamConn]struct{}
	perIP map[netip.Addr]int
	done  bool
}

func newStreamListener(ln net.Listener, max, maxPerIP int, refused func()) *streamListener {
	return &streamListener{Listener: ln, max: max, maxPerIP: maxPerIP, refused: refused,
		conns: map[*streamConn]struct{}{}, perIP: map[netip.Addr]int{}}
}

func (l *streamListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := addrIP(c.RemoteAddr())
		l.mu.Lock()
		if l.done || len(l.conns) >= l.max || l.perIP[ip] >= l.maxPerIP {
			l.mu.Unlock()
			c.Close()
			l.refused()
			continue
		}
		sc := &streamConn{Conn: c, l: l, ip: ip}
		l.conns[sc] = struct{}{}
		l.perIP[ip]++
		l.mu.Unlock()
		return sc, nil
	}
}

// closeAll closes the listener and every connection it handed out.
func (l *streamListener) closeAll() {
	l.Listener.Close()
	l.mu.Lock()
	l.done = true
	conns := make([]*streamConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

type streamConn struct {
	net.Conn
	l    *streamListener
	ip   netip.Addr
	once sync.Once
}

func (c *streamConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(StreamIdleTimeout))
	return c.Conn.Read(p)
}

func (c *streamConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		if c.l.perIP[c.ip]--; c.l.perIP[c.ip] <= 0 {
			delete(c.l.perIP, c.ip)
		}
		c.l.mu.Unlock()
	})
	return err
}

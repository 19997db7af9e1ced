// Package portmux lets one TCP port carry HTTP (and WebSocket), STUN/TURN
// over TCP, and both again over TLS: firewall friendly, since a network that
// lets a peer reach the mediator's web port lets it reach its TURN relay too.
//
// Each accepted connection is classified by its first bytes, within
// SniffTimeout: 0x16 is a TLS ClientHello (terminated here, then the
// decrypted stream is classified again); a STUN header (top two bits 00 and
// the magic cookie at bytes 4..8) is STUN/TURN; anything else is handed to
// HTTP, whose server answers garbage itself. At most MaxPending connections
// are being classified at once; a new one beyond that closes the one that has
// waited longest, so clients that say nothing cannot keep others out.
package portmux

import (
	"bufio"
	"container/list"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Defaults for Config's zero values.
const (
	DefaultSniffTimeout = 10 * time.Second
	DefaultMaxPending   = 256
)

// Config configures a Mux.
type Config struct {
	// TLS, when set, terminates TLS connections; without it they are
	// closed.
	TLS *tls.Config
	// SniffTimeout bounds the wait for a connection's first bytes (and its
	// TLS handshake).
	SniffTimeout time.Duration
	// MaxPending caps connections being classified at once. When a new
	// connection finds them all taken, the oldest is closed: a real client
	// sends its first bytes at once, so the oldest is the likeliest to be
	// one that never will.
	MaxPending int
	// Logger receives debug logs of refused connections; nil: slog.Default().
	Logger *slog.Logger
}

// Mux splits a listener. Create it with New, serve HTTP() and STUN(), and
// call Run.
type Mux struct {
	ln         net.Listener
	cfg        Config
	log        *slog.Logger
	http, stun *subListener
	wg         sync.WaitGroup

	mu      sync.Mutex
	pending list.List // of *pendingConn being classified, oldest first
}

// New wraps ln.
func New(ln net.Listener, cfg Config) *Mux {
	if cfg.SniffTimeout <= 0 {
		cfg.SniffTimeout = DefaultSniffTimeout
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	m := &Mux{ln: ln, cfg: cfg, log: cfg.Logger}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.http = newSubListener(ln.Addr())
	m.stun = newSubListener(ln.Addr())
	return m
}

// HTTP is the listener of HTTP connections (plain or decrypted TLS).
func (m *Mux) HTTP() net.Listener { return m.http }

// STUN is the listener of STUN/TURN connections (plain or decrypted TLS).
func (m *Mux) STUN() net.Listener { return m.stun }

// Run accepts until ctx ends or the listener fails, then closes it and both
// sub-listeners and returns once no connection is being classified. It
// returns nil after ctx ended.
func (m *Mux) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { m.ln.Close() })
	defer stop()
	defer m.wg.Wait()
	defer m.stun.Close()
	defer m.http.Close()
	defer m.ln.Close()
	var delay time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || temporary(err) {
				// Out of file descriptors and the like: back off as
				// net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
					continue
				case <-ctx.Done():
					return nil
				}
			}
			return err
		}
		delay = 0
		e := m.admit(c)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.classify(ctx, c, e)
		}()
	}
}

// admit registers c as being classified. When MaxPending are already, the
// oldest is evicted: its deadline passes at once, so its classify gives up
// and closes it. (Closing new connections instead would let a few hundred
// silent ones lock everybody out.)
func (m *Mux) admit(c net.Conn) *list.Element {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending.Len() >= m.cfg.MaxPending {
		old := m.pending.Remove(m.pending.Front()).(*pendingConn)
		old.evicted = true
		old.c.SetDeadline(time.Unix(1, 0))
		m.log.Debug("portmux: too many connections being classified; closing the oldest", "remote", old.c.RemoteAddr().String())
	}
	return m.pending.PushBack(&pendingConn{c: c})
}

// pendingConn is an entry of Mux.pending; evicted is guarded by Mux.mu.
type pendingConn struct {
	c       net.Conn
	evicted bool
}

// classified takes e off the pending list, and reports false if it was
// evicted meanwhile (its deadline is then spent).
func (m *Mux) classified(e *list.Element) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Value.(*pendingConn).evicted {
		return false
	}
	m.pending.Remove(e) // a no-op after an earlier call
	return true
}

// pendingLen is how many connections are being classified.
func (m *Mux) pendingLen() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pending.Len()
}

// temporary reports a passing accept error (EMFILE, ECONNABORTED).
func temporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// classify reads c's first bytes and hands it on, or closes it; e is its
// place on the pending list.
func (m *Mux) classify(ctx context.Context, c net.Conn, e *list.Element) {
	deadline := time.Now().Add(m.cfg.SniffTimeout)
	c.SetDeadline(deadline)
	pc := &peekedConn{Conn: c, r: bufio.NewReaderSize(c, 64)}
	first, err := pc.r.Peek(1)
	if err != nil {
		m.classified(e)
		c.Close()
		return
	}
	if first[0] == 0x16 {
		if m.cfg.TLS == nil {
			m.log.Debug("portmux: TLS without a certificate; closing", "remote", c.RemoteAddr().String())
			c.Close()
			return
		}
		tc := tls.Server(pc, m.cfg.TLS)
		hctx, cancel := context.WithDeadline(ctx, deadline)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			m.classified(e)
			m.log.Debug("portmux: TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
		pc = &peekedConn{Conn: tc, r: bufio.NewReaderSize(tc, 64), tls: tc}
		if first, err = pc.r.Peek(1); err != nil {
			m.classified(e)
			tc.Close()
			return
		}
	}
	to := m.http
	if first[0]&0xC0 == 0 {
		hdr, _ := pc.r.Peek(8)
		if !isSTUN(hdr) {
			m.classified(e)
			m.log.Debug("portmux: neither HTTP, STUN nor TLS; closing", "remote", c.RemoteAddr().String())
			pc.Close()
			return
		}
		to = m.stun
	}
	if !m.classified(e) {
		pc.Close() // evicted just as its bytes came
		return
	}
	pc.SetDeadline(time.Time{})
	if !to.deliver(ctx, pc) {
		pc.Close()
	}
}

// isSTUN reports whether a stream's first 8 bytes start a STUN message: top
// bits 00 and the magic cookie. (0x16, TLS, also has top bits 00; it is told
// apart before.)
func isSTUN(b []byte) bool {
	return len(b) >= 8 && b[0]&0xC0 == 0 && binary.BigEndian.Uint32(b[4:8]) == 0x2112A442
}

// peekedConn is a connection whose first bytes were read ahead.
type peekedConn struct {
	net.Conn
	r   *bufio.Reader
	tls *tls.Conn // set when TLS was terminated here
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// ConnectionState reports the TLS state of a connection that came over TLS
// (the zero value otherwise).
func (c *peekedConn) ConnectionState() tls.ConnectionState {
	if c.tls == nil {
		return tls.ConnectionState{}
	}
	return c.tls.ConnectionState()
}

// subListener is one kind's share of the connections.
type subListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newSubListener(addr net.Addr) *subListener {
	return &subListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *subListener) deliver(ctx context.Context, c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
	case <-ctx.Done():
	}
	return false
}

func (l *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
}

func (l *subListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *subListener) Addr() net.Addr { return l.addr }

package iceserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DemuxQueue is how many datagrams each side of a Demux holds for its reader
// before further ones are dropped (UDP may drop; memory stays bounded).
const DemuxQueue = 512

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// Demux splits one UDP socket between the STUN/TURN server and the DHT: one
// goroutine (Run) reads every datagram and queues it for the side its first
// bytes name (classify); anything else is dropped and counted. Both sides
// write straight to the socket. Create it with NewDemux, hand STUN() and
// DHT() to their users, and call Run.
type Demux struct {
	conn      net.PacketConn
	stun, dht *subConn
	dropped   *prometheus.CounterVec // by reason
	pool      sync.Pool              // *[]byte of smallPacket capacity
}

// smallPacket is the size of pooled datagram copies; larger ones are
// allocated (rare: ICE and KRPC stay below the path MTU).
const smallPacket = 2048

// NewDemux wraps conn. Its counters (datagrams dropped, by reason) are
// registered with reg when reg is not nil.
func NewDemux(conn net.PacketConn, reg prometheus.Registerer) (*Demux, error) {
	d := &Demux{
		conn: conn,
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "p2pcdn_udp_demux_dropped_total",
			Help: "Datagrams on the shared UDP port dropped by the demultiplexer: unknown (neither STUN/TURN nor DHT) or queue_full.",
		}, []string{"reason"}),
	}
	d.dropped.WithLabelValues("unknown")
	d.dropped.WithLabelValues("queue_full")
	d.pool.New = func() any { b := make([]byte, smallPacket); return &b }
	d.stun = newSubConn(d, "stun")
	d.dht = newSubConn(d, "dht")
	if reg != nil {
		if err := reg.Register(d.dropped); err != nil {
			return nil, fmt.Errorf("iceserver: registering the demultiplexer's metrics: %w", err)
		}
	}
	return d, nil
}

// STUN is the socket's STUN/TURN side (STUN messages and ChannelData).
func (d *Demux) STUN() net.PacketConn { return d.stun }

// DHT is the socket's DHT side (KRPC messages).
func (d *Demux) DHT() net.PacketConn { return d.dht }

// Run reads the socket until ctx ends or the socket fails, then closes the
// socket. It returns nil after ctx ended. Each side is left to its user to
// close: a side's reader then sees no more datagrams, but no error either
// until its own Close. (The DHT library panics on a read error it did not
// cause by closing, and both users stop on the same context as Run.)
func (d *Demux) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { d.conn.Close() })
	defer stop()
	defer d.conn.Close()
	buf := make([]byte, maxDatagram)
	for {
		n, addr, err := d.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("iceserver: reading the shared UDP socket %s: %w", d.conn.LocalAddr(), err)
		}
		d.route(buf[:n], addr)
	}
}

// route queues one datagram for its side, or drops it.
func (d *Demux) route(b []byte, addr net.Addr) {
	var to *subConn
	switch classify(b) {
	case kindSTUN, kindChannelData:
		to = d.stun
	case kindKRPC:
		to = d.dht
	default:
		d.dropped.WithLabelValues("unknown").Inc()
		return
	}
	var p *[]byte
	if len(b) <= smallPacket {
		p = d.pool.Get().(*[]byte)
		*p = append((*p)[:0], b...)
	} else {
		c := append([]byte(nil), b...)
		p = &c
	}
	if !to.deliver(packet{b: p, addr: addr}) {
		d.recycle(p)
		d.dropped.WithLabelValues("queue_full").Inc()
	}
}

func (d *Demux) recycle(p *[]byte) {
	if cap(*p) == smallPacket {
		d.pool.Put(p)
	}
}

type packet struct {
	b    *[]byte
	addr net.Addr
}

// subConn is one side of a Demux: a net.PacketConn reading from its queue
// and writing to the shared socket.
type subConn struct {
	d      *Demux
	name   string
	queue  chan packet
	closed chan struct{}
	once   sync.Once

	mu       sync.Mutex
	deadline time.Time
	dlChange chan struct{} // closed and replaced when the deadline changes
}

func newSubConn(d *Demux, name string) *subConn {
	return &subConn{d: d, name: name, queue: make(chan packet, DemuxQueue), closed: make(chan struct{}), dlChange: make(chan struct{})}
}

func (c *subConn) deliver(p packet) bool {
	select {
	case <-c.closed:
		return false
	default:
	}
	select {
	case c.queue <- p:
		return true
	default:
		return false
	}
}

// ReadFrom returns the next queued datagram, truncated to p as UDP would.
func (c *subConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		select {
		case <-c.closed:
			return 0, nil, c.opErr("read", net.ErrClosed)
		default:
		}
		c.mu.Lock()
		dl, changed := c.deadline, c.dlChange
		c.mu.Unlock()
		var timer *time.Timer
		var timeout <-chan time.Time
		if !dl.IsZero() {
			wait := time.Until(dl)
			if wait <= 0 {
				return 0, nil, c.opErr("read", os.ErrDeadlineExceeded)
			}
			timer = time.NewTimer(wait)
			timeout = timer.C
		}
		var pk packet
		var err error
		select {
		case pk = <-c.queue:
		case <-c.closed:
			err = c.opErr("read", net.ErrClosed)
		case <-timeout: // checked again at the top
		case <-changed:
		}
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return 0, nil, err
		}
		if pk.b != nil {
			n := copy(p, *pk.b)
			c.d.recycle(pk.b)
			return n, pk.addr, nil
		}
	}
}

func (c *subConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, c.opErr("write", net.ErrClosed)
	default:
	}
	return c.d.conn.WriteTo(p, addr)
}

// Close closes this side only; the socket is the Demux's to close.
func (c *subConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		for {
			select {
			case pk := <-c.queue:
				c.d.recycle(pk.b)
			default:
				return
			}
		}
	})
	return nil
}

func (c *subConn) LocalAddr() net.Addr { return c.d.conn.LocalAddr() }

func (c *subConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *subConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	close(c.dlChange)
	c.dlChange = make(chan struct{})
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline does nothing: writes go straight to the shared socket,
// whose deadlines belong to both sides, and UDP writes do not block.
func (c *subConn) SetWriteDeadline(time.Time) error { return nil }

func (c *subConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: c.d.conn.LocalAddr(), Err: err}
}

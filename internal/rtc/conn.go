package rtc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// Conn is an open data channel used as a byte stream. Read returns the bytes of however many messages;
// Write splits into messages of at most 64 KiB and blocks while too much is queued for sending, until
// Close or until the peer connection ends. Close tears down the channel, and the peer connection too
// when the Conn came from Dial or Accept.
type Conn interface {
	io.ReadWriteCloser
	// RemoteAddr is the selected remote candidate's address, for logs.
	RemoteAddr() string
	// Label is the data channel's label.
	Label() string
}

// ErrMessageTooLarge is returned by Read when the peer sent a message larger than we advertised.
var ErrMessageTooLarge = errors.New("rtc: data-channel message larger than the advertised max-message-size")

type conn struct {
	p      *Peer
	owner  bool // Close closes p too (Dial and Accept)
	pc     *webrtc.PeerConnection
	dc     *webrtc.DataChannel // for buffered-amount flow control
	rwc    datachannel.ReadWriteCloserDeadliner
	remote string
	label  string

	maxMsg, chunk int
	closed        chan struct{}
	closeOnce     sync.Once

	rmu        sync.Mutex
	rbuf       []byte // allocated on first use for reads smaller than a message
	rpos, rend int
	eof        atomic.Bool // the remote closed the channel

	wmu  sync.Mutex
	pace *pacer // the peer connection's send window
}

func newConn(p *Peer, dc *webrtc.DataChannel, rwc datachannel.ReadWriteCloserDeadliner) *conn {
	t := p.t
	p.mu.Lock()
	if p.pace == nil { // the first channel: the remote's description is known by now
		p.pace = newPacer(p.pc, t.cfg, p.remoteRcvbuf, t.paced, t.log)
	}
	pace := p.pace
	p.mu.Unlock()
	c := &conn{
		p: p, pc: p.pc, dc: dc, rwc: rwc, remote: p.RemoteAddr(), label: dc.Label(),
		maxMsg: t.cfg.MaxMessageSize,
		chunk:  t.cfg.WriteChunk,
		closed: make(chan struct{}),
		pace:   pace,
	}
	pace.add(c)
	return c
}

func (c *conn) RemoteAddr() string { return c.remote }

func (c *conn) Label() string { return c.label }

func (c *conn) Read(p []byte) (int, error) {
	// Once closed, reads end here: a closed channel's remaining input is being drained.
	select {
	case <-c.closed:
		if c.eof.Load() {
			return 0, io.EOF
		}
		return 0, net.ErrClosed
	default:
	}
	c.rmu.Lock()
	n, closeAfter, err := c.read(p)
	c.rmu.Unlock()
	// Closing drains the channel under rmu (and may close the peer, which waits for that).
	if closeAfter != nil {
		closeAfter()
	}
	return n, err
}

// read is Read with rmu held; closeAfter, if set, must run once rmu is released.
func (c *conn) read(p []byte) (n int, closeAfter func(), err error) {
	if c.rpos < c.rend {
		n := copy(p, c.rbuf[c.rpos:c.rend])
		c.rpos += n
		return n, nil, nil
	}
	if len(p) == 0 {
		return 0, nil, nil
	}
	for {
		// A message must be read whole, so small reads go through our buffer.
		buf := p
		if len(p) < c.maxMsg {
			if c.rbuf == nil {
				c.rbuf = make([]byte, c.maxMsg)
			}
			buf = c.rbuf
		}
		n, err := c.rwc.Read(buf)
		if err != nil {
			return c.readErr(err)
		}
		if n == 0 { // an empty message carries no bytes
			continue
		}
		if len(p) >= c.maxMsg {
			if n > c.maxMsg { // what a small read buffer would have refused
				return 0, c.closeQuietly, fmt.Errorf("%w (%d bytes)", ErrMessageTooLarge, c.maxMsg)
			}
			return n, nil, nil
		}
		m := copy(p, c.rbuf[:n])
		c.rpos, c.rend = m, n
		return m, nil, nil
	}
}

func (c *conn) closeQuietly() { _ = c.Close() }

func (c *conn) readErr(err error) (int, func(), error) {
	select {
	case <-c.closed:
		return 0, nil, net.ErrClosed
	default:
	}
	if errors.Is(err, io.ErrShortBuffer) {
		return 0, c.closeQuietly, fmt.Errorf("%w (%d bytes)", ErrMessageTooLarge, c.maxMsg)
	}
	if errors.Is(err, io.EOF) {
		// The remote closed the channel. Close our direction too (RFC 8831 section 6.7), which also
		// ends a Write waiting for a window that will never open.
		c.eof.Store(true)
		return 0, c.closeChannel, io.EOF
	}
	return 0, nil, fmt.Errorf("rtc read from %s: %w", c.remote, err)
}

func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	written := 0
	for len(p) > 0 {
		size, err := c.pace.reserve(c, len(p))
		if errors.Is(err, errAssociationGone) {
			err = c.p.err()
			_ = c.Close()
			return written, fmt.Errorf("rtc write to %s: %w", c.remote, err)
		}
		if err != nil {
			return written, err
		}
		select {
		case <-c.closed:
			c.pace.release(size)
			return written, net.ErrClosed
		default:
		}
		n, err := c.rwc.Write(p[:size])
		c.pace.release(size)
		written += n
		if err != nil {
			select {
			case <-c.closed:
				return written, net.ErrClosed
			default:
			}
			return written, fmt.Errorf("rtc write to %s: %w", c.remote, err)
		}
		p = p[size:]
	}
	return written, nil
}

// errAssociationGone is pacer.reserve's word that the peer connection has ended.
var errAssociationGone = errors.New("rtc: the association is gone")

func (c *conn) Close() error {
	c.closeChannel()
	if c.owner {
		return c.p.Close()
	}
	return nil
}

// closeChannel closes the channel alone.
func (c *conn) closeChannel() {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.pace.remove(c)
		// Wake a Read blocked in SCTP, and reset our outgoing stream.
		_ = c.rwc.SetReadDeadline(time.Unix(1, 0))
		_ = c.rwc.Close()
		c.p.forget(c)
		c.p.drain(c)
	})
}

// Draining a closed channel's input (see Peer.drain) stops after this long or this many bytes.
const (
	drainTimeout = 10 * time.Second
	drainMax     = 16 << 20
)

// drain reads and discards what arrives on the closed channel c until the remote's stream reset
// completes. SCTP resets the remote's direction only once everything it sent has been received, and
// until then its unread bytes count against the whole association's receive window: left undrained, a
// channel closed while the remote was writing could stall every other channel on the connection.
func (p *Peer) drain(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed { // the association is closing: nothing to drain, and Close may be waiting already
		return
	}
	p.wg.Go(func() {
		c.rmu.Lock()
		defer c.rmu.Unlock()
		if c.eof.Load() {
			return
		}
		_ = c.rwc.SetReadDeadline(time.Now().Add(drainTimeout))
		buf := c.rbuf
		if buf == nil {
			buf = make([]byte, c.maxMsg)
		}
		for total := 0; total < drainMax; {
			n, err := c.rwc.Read(buf)
			if err != nil {
				return
			}
			total += n
		}
	})
}

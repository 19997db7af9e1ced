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
	low           chan struct{} // signalled when the buffered amount falls below half the window
	closed        chan struct{}
	closeOnce     sync.Once

	rmu        sync.Mutex
	rbuf       []byte // allocated on first use for reads smaller than a message
	rpos, rend int
	eof        atomic.Bool // the remote closed the channel

	wmu    sync.Mutex
	minWin int // window bounds, see Config.MinWindow
	maxWin int
	rate   float64       // window bytes per second of round trip, see Config.WindowRate
	minRTT time.Duration // smallest smoothed round trip seen; 0 until measured
	nRTT   int           // times minRTT was sampled
	window int           // current send window; its half is the low threshold
}

func newConn(p *Peer, dc *webrtc.DataChannel, rwc datachannel.ReadWriteCloserDeadliner) *conn {
	t := p.t
	c := &conn{
		p: p, pc: p.pc, dc: dc, rwc: rwc, remote: p.RemoteAddr(), label: dc.Label(),
		maxMsg: t.cfg.MaxMessageSize,
		chunk:  t.cfg.WriteChunk,
		low:    make(chan struct{}, 1),
		closed: make(chan struct{}),
		minWin: t.cfg.MinWindow,
		maxWin: t.cfg.HighWater,
		rate:   float64(t.cfg.WindowRate),
		window: t.cfg.MinWindow,
	}
	if rtt := iceRTT(p.pc); rtt > 0 {
		// ICE measured the path with its checks, which a browser answers from its network thread, so
		// a busy page cannot inflate them: the window fits the path from the first byte on.
		c.minRTT, c.nRTT = rtt, rttSamples
		c.setWindow(c.windowFor(rtt))
	}
	dc.SetBufferedAmountLowThreshold(uint64(c.window / 2))
	dc.OnBufferedAmountLow(func() {
		select {
		case c.low <- struct{}{}:
		default:
		}
	})
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
		chunk := p[:min(len(p), c.chunk)]
		if err := c.waitWritable(len(chunk)); err != nil {
			return written, err
		}
		n, err := c.rwc.Write(chunk)
		written += n
		if err != nil {
			select {
			case <-c.closed:
				return written, net.ErrClosed
			default:
			}
			return written, fmt.Errorf("rtc write to %s: %w", c.remote, err)
		}
		p = p[len(chunk):]
	}
	return written, nil
}

// waitWritable blocks until n more bytes fit in the send window. Called with wmu held.
func (c *conn) waitWritable(n int) error {
	for c.dc.BufferedAmount()+uint64(n) > uint64(c.window) {
		// Re-measured only when full: reading SCTP's statistics takes its lock.
		if w := c.window; c.updateWindow() > w {
			continue
		}
		// n is at most half the window, so the amount is above the threshold and will cross it.
		select {
		case <-c.low:
		case <-c.closed:
			return net.ErrClosed
		case <-c.p.done:
			// The association is gone (the remote aborted or closed, or ICE failed): the buffered
			// amount will never fall.
			err := c.p.err()
			_ = c.Close()
			return fmt.Errorf("rtc write to %s: %w", c.remote, err)
		}
	}
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
		return nil
	}
}

// rttSamples is how many times the window must have filled, each time sampling SCTP's smoothed round
// trip, before it grows: the first sample is the channel-open message's round trip, which a busy
// browser can inflate tenfold, and the smoothing (1/8 per sample) takes a while to forget it.
const rttSamples = 8

// updateWindow sizes the send window from the smallest round trip SCTP has measured and returns it.
// The smallest, not the current one: queueing in a slow receiver raises the round trip, and a window
// that grew with it would overflow that receiver. Called with wmu held.
func (c *conn) updateWindow() int {
	if sctp := c.pc.SCTP(); sctp != nil {
		if s := sctp.Stats().SmoothedRoundTripTime; s > 0 {
			c.nRTT++
			if rtt := time.Duration(s * float64(time.Second)); c.minRTT == 0 || rtt < c.minRTT {
				c.minRTT = rtt
			}
		}
	}
	w := c.minWin
	if c.nRTT >= rttSamples {
		w = c.windowFor(c.minRTT)
	}
	if w != c.window {
		c.setWindow(w)
	}
	return w
}

// setWindow makes w the send window, with its low threshold. Called with wmu held (or before the conn
// is used).
func (c *conn) setWindow(w int) {
	c.window = w
	c.dc.SetBufferedAmountLowThreshold(uint64(w / 2))
}

// iceRTT is the round trip of the connection's selected candidate pair as ICE's checks measured it, or
// 0 when unknown.
func iceRTT(pc *webrtc.PeerConnection) time.Duration {
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return 0
	}
	st, ok := sctp.Transport().ICETransport().GetSelectedCandidatePairStats()
	if !ok || st.CurrentRoundTripTime <= 0 {
		return 0
	}
	rtt := st.CurrentRoundTripTime
	if st.ResponsesReceived > 0 && st.TotalRoundTripTime > 0 {
		rtt = min(rtt, st.TotalRoundTripTime/float64(st.ResponsesReceived))
	}
	return time.Duration(rtt * float64(time.Second))
}

// windowFor is the send window for a path whose smallest round trip is rtt (0 when unknown).
func (c *conn) windowFor(rtt time.Duration) int {
	return min(max(int(rtt.Seconds()*c.rate), c.minWin), c.maxWin)
}

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

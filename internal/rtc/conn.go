package rtc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// Conn is an open data channel used as a byte stream. Read returns the bytes of however many messages;
// Write splits into messages of at most 64 KiB and blocks while too much is queued for sending, until
// Close. Close tears down the channel and the peer connection.
type Conn interface {
	io.ReadWriteCloser
	// RemoteAddr is the selected remote candidate's address, for logs.
	RemoteAddr() string
}

// ErrMessageTooLarge is returned by Read when the peer sent a message larger than we advertised.
var ErrMessageTooLarge = errors.New("rtc: data-channel message larger than the advertised max-message-size")

type conn struct {
	t      *Transport
	pc     *webrtc.PeerConnection
	dc     *webrtc.DataChannel // for buffered-amount flow control
	rwc    datachannel.ReadWriteCloserDeadliner
	remote string

	maxMsg, chunk int
	low           chan struct{} // signalled when the buffered amount falls below half the window
	closed        chan struct{}
	closeOnce     sync.Once
	closeErr      error

	rmu        sync.Mutex
	rbuf       []byte // allocated on first use for reads smaller than a message
	rpos, rend int

	wmu    sync.Mutex
	minWin int // window bounds, see Config.MinWindow
	maxWin int
	rate   float64       // window bytes per second of round trip, see Config.WindowRate
	minRTT time.Duration // smallest smoothed round trip seen; 0 until measured
	nRTT   int           // times minRTT was sampled
	window int           // current send window; its half is the low threshold
}

func newConn(t *Transport, pc *webrtc.PeerConnection, dc *webrtc.DataChannel,
	rwc datachannel.ReadWriteCloserDeadliner, remote string) *conn {
	c := &conn{
		t: t, pc: pc, dc: dc, rwc: rwc, remote: remote,
		maxMsg: t.cfg.MaxMessageSize,
		chunk:  t.cfg.WriteChunk,
		low:    make(chan struct{}, 1),
		closed: make(chan struct{}),
		minWin: t.cfg.MinWindow,
		maxWin: t.cfg.HighWater,
		rate:   float64(t.cfg.WindowRate),
		window: t.cfg.MinWindow,
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

func (c *conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rpos < c.rend {
		n := copy(p, c.rbuf[c.rpos:c.rend])
		c.rpos += n
		return n, nil
	}
	if len(p) == 0 {
		return 0, nil
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
			return 0, c.readErr(err)
		}
		if n == 0 { // an empty message carries no bytes
			continue
		}
		if len(p) >= c.maxMsg {
			if n > c.maxMsg { // what a small read buffer would have refused
				_ = c.Close()
				return 0, fmt.Errorf("%w (%d bytes)", ErrMessageTooLarge, c.maxMsg)
			}
			return n, nil
		}
		m := copy(p, c.rbuf[:n])
		c.rpos, c.rend = m, n
		return m, nil
	}
}

func (c *conn) readErr(err error) error {
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	if errors.Is(err, io.ErrShortBuffer) {
		_ = c.Close()
		return fmt.Errorf("%w (%d bytes)", ErrMessageTooLarge, c.maxMsg)
	}
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	return fmt.Errorf("rtc read from %s: %w", c.remote, err)
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
		c.window = w
		c.dc.SetBufferedAmountLowThreshold(uint64(w / 2))
	}
	return w
}

// windowFor is the send window for a path whose smallest round trip is rtt (0 when unknown).
func (c *conn) windowFor(rtt time.Duration) int {
	return min(max(int(rtt.Seconds()*c.rate), c.minWin), c.maxWin)
}

func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		// Wake a Read blocked in SCTP; closing the association below ends it for good.
		_ = c.rwc.SetReadDeadline(time.Unix(1, 0))
		_ = c.rwc.Close()
		c.closeErr = c.pc.GracefulClose()
		if errors.Is(c.closeErr, os.ErrDeadlineExceeded) {
			c.closeErr = nil
		}
		c.t.forget(c)
	})
	return c.closeErr
}

package rtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"

	"github.com/pion/webrtc/v4"
)

// MaxIncoming is how many channels the remote may have opened that the owner has not taken from
// Incoming yet; more are refused (closed).
const MaxIncoming = 16

// ErrPeerClosed is returned by OpenChannel on a closed or failed peer connection.
var ErrPeerClosed = errors.New("rtc: peer connection closed")

// Peer is one RTCPeerConnection with its data channels. DialPeer and AcceptPeer return it once the
// first channel is open; more channels are opened with OpenChannel (in-band, without signalling) and
// those the remote opens arrive on Incoming. Closing a channel leaves the connection open; Close ends
// the connection and every channel on it.
type Peer struct {
	t   *Transport
	pc  *webrtc.PeerConnection
	log *slog.Logger

	done     chan struct{} // closed when the connection has ended
	incoming chan Conn

	mu        sync.Mutex
	endErr    error // why done was closed
	closed    bool  // Close was called
	firstDC   *webrtc.DataChannel
	first     chan *conn // the first channel, handed to the negotiation
	gotFirst  bool
	chans     map[*conn]struct{}
	remoteExt int    // the remote's "p2pcdn" level
	remote    string // selected remote address, once known
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // channel drainers

	// remoteRcvbuf is the remote's advertised socket receive buffer ("rcvbuf"), 0 if it said nothing.
	remoteRcvbuf int
	pace         *pacer // the send window its channels share, made with the first (conn.go)
}

func (t *Transport) newPeer(servers []webrtc.ICEServer) (*Peer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	pc, err := t.api.NewPeerConnection(webrtc.Configuration{ICEServers: servers})
	if err != nil {
		return nil, fmt.Errorf("create peer connection: %w", err)
	}
	p := &Peer{
		t:        t,
		pc:       pc,
		log:      t.log,
		done:     make(chan struct{}),
		incoming: make(chan Conn, MaxIncoming),
		first:    make(chan *conn, 1),
		chans:    make(map[*conn]struct{}),
	}
	t.peers[p] = struct{}{}
	pc.OnConnectionStateChange(p.onState)
	pc.OnDataChannel(func(dc *webrtc.DataChannel) { p.watch(dc, nil) })
	if sctp := pc.SCTP(); sctp != nil {
		// The association can end (the remote aborted it) while DTLS and ICE stay up.
		sctp.OnClose(func(error) { p.end(errors.New("the peer closed the connection")) })
	}
	return p, nil
}

func (p *Peer) onState(st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateFailed:
		p.end(errors.New("the connection failed (the peer stopped answering)"))
		// Closing waits for pion's goroutines, so it must not run inside pion's callback.
		p.t.mu.Lock()
		defer p.t.mu.Unlock()
		if !p.t.closed { // otherwise Transport.Close closes it
			p.t.wg.Go(func() { _ = p.Close() })
		}
	case webrtc.PeerConnectionStateClosed:
		p.end(errors.New("the connection closed"))
	}
}

// end marks the connection as over and wakes every writer waiting on it.
func (p *Peer) end(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
	default:
		p.endErr = err
		close(p.done)
	}
}

// err is why the connection ended.
func (p *Peer) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return net.ErrClosed
	}
	if p.endErr == nil {
		return ErrPeerClosed
	}
	return p.endErr
}

// Done is closed when the connection has ended: closed by either side, or failed.
func (p *Peer) Done() <-chan struct{} { return p.done }

// Incoming delivers the channels the remote opens after the first one. It is never closed; select on
// Done too.
func (p *Peer) Incoming() <-chan Conn { return p.incoming }

// Extension returns the "p2pcdn" level of the remote's signals: 0 for a prototype peer, which uses one
// channel per connection, at least 1 for a peer of ours, which takes more channels on it.
func (p *Peer) Extension() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.remoteExt
}

// RemoteAddr is the selected remote candidate's address ("?" until known), for logs and limits.
func (p *Peer) RemoteAddr() string {
	p.mu.Lock()
	r := p.remote
	p.mu.Unlock()
	if r != "" {
		return r
	}
	r = selectedRemote(p.pc)
	if r != "?" {
		p.mu.Lock()
		p.remote = r
		p.mu.Unlock()
	}
	return r
}

// Channels returns how many channels are open on the connection.
func (p *Peer) Channels() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.chans)
}

// OpenChannel opens an ordered, reliable channel labelled label on the open connection, without
// signalling. The remote may refuse it by closing it, which shows as io.EOF on Read.
func (p *Peer) OpenChannel(ctx context.Context, label string) (Conn, error) {
	select {
	case <-p.done:
		return nil, fmt.Errorf("rtc open channel: %w", p.err())
	default:
	}
	opened := make(chan *conn, 1)
	ordered := true
	dc, err := p.pc.CreateDataChannel(label, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return nil, fmt.Errorf("rtc open channel: %w", err)
	}
	p.watch(dc, opened)
	select {
	case c := <-opened:
		return c, nil
	case <-p.done:
		_ = dc.Close()
		return nil, fmt.Errorf("rtc open channel: %w", p.err())
	case <-ctx.Done():
		_ = dc.Close()
		return nil, ctx.Err()
	}
}

// watch arranges for dc, once open, to be detached and delivered: to opened when we opened it in-band,
// as the first channel if it is the connection's first, and otherwise to Incoming.
func (p *Peer) watch(dc *webrtc.DataChannel, opened chan *conn) {
	dc.OnOpen(func() {
		rwc, err := dc.DetachWithDeadline()
		if err != nil {
			p.log.Warn("rtc: cannot detach data channel", "err", err)
			return
		}
		c := newConn(p, dc, rwc)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = rwc.Close()
			return
		}
		p.chans[c] = struct{}{}
		var dest chan *conn
		switch {
		case opened != nil:
			dest = opened
		case !p.gotFirst && (p.firstDC == nil || p.firstDC == dc):
			p.gotFirst = true
			dest = p.first
		}
		p.mu.Unlock()
		if dest != nil {
			dest <- c // buffered, and each receives once
			return
		}
		select {
		case p.incoming <- c:
		default: // the owner is not taking them: refuse
			p.log.Debug("rtc: refusing a channel, too many waiting", "label", dc.Label())
			c.closeChannel()
		}
	})
}

func (p *Peer) forget(c *conn) {
	p.mu.Lock()
	delete(p.chans, c)
	p.mu.Unlock()
}

// Close closes every channel and the connection.
func (p *Peer) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		chans := p.chans
		p.chans = map[*conn]struct{}{}
		pace := p.pace
		p.mu.Unlock()
		if pace != nil {
			pace.stop()
		}
		for c := range chans {
			c.closeChannel()
		}
		p.end(net.ErrClosed)
		p.closeErr = p.pc.GracefulClose()
		if errors.Is(p.closeErr, os.ErrDeadlineExceeded) {
			p.closeErr = nil
		}
		p.wg.Wait() // the association is closed: their reads have ended
		p.t.forget(p)
		// Channels the owner never took.
		for {
			select {
			case c := <-p.incoming:
				c.(*conn).closeChannel()
			default:
				return
			}
		}
	})
	return p.closeErr
}

func selectedRemote(pc *webrtc.PeerConnection) string {
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil {
		return "?"
	}
	pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Remote == nil {
		return "?"
	}
	if ip, err := netip.ParseAddr(pair.Remote.Address); err == nil {
		return netip.AddrPortFrom(ip, pair.Remote.Port).String()
	}
	return net.JoinHostPort(pair.Remote.Address, fmt.Sprint(pair.Remote.Port))
}

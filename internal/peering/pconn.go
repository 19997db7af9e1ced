package peering

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/swarm"
)

// labelPrefix starts our channels' labels: p2pcdn/<full hash>.
const labelPrefix = "p2pcdn/"

// recvSignals is how many signals (trickled candidates, mostly) a negotiation
// holds before it reads them; a browser of ours trickles its offer's
// server candidates right behind it.
const recvSignals = 64

// pconn is one peer connection, from the start of its negotiation until it
// closes. Its fields are guarded by Host.mu, except those set at creation.
type pconn struct {
	remote    string
	hash      string // the file whose signals set it up
	initiator bool   // we sent the offer
	ctx       context.Context
	cancel    context.CancelFunc
	recv      chan string // signals for the negotiation
	started   time.Time

	// shared: the connection is in Host.shared and may carry several files
	// (the remote is ours, or, for our dial, not known yet); otherwise it is
	// in Host.single and carries one.
	shared bool
	// addr is where the remote is: the first candidate address of its offer,
	// then the address ICE connected to.
	addr   string
	proven bool // ICE found a path: the remote is real
	open   bool // the first channel is open: the connection is established
	peer   *rtc.Peer
	chans  map[string]*channel // by hash
	queue  map[string]bool     // files to open channels for once open
	idle   *time.Timer
	// refusals budgets the remote's channels we refuse (see refusalBurst).
	refusals *rate.Limiter
	// unheard holds a token per channel we opened and have not heard from
	// yet (see maxUnheard).
	unheard chan struct{}
}

// channel is one file's wire session on a connection.
type channel struct {
	initiator bool // we opened it
	cancel    context.CancelFunc
	heard     func() // gives back the channel's unheard token, if it holds one; idempotent
}

// newConnLocked registers a connection about to negotiate.
func (h *Host) newConnLocked(remote, hash string, initiator, shared bool, addr string) *pconn {
	ctx, cancel := context.WithCancel(h.ctx)
	c := &pconn{
		remote: remote, hash: hash, initiator: initiator, ctx: ctx, cancel: cancel,
		recv: make(chan string, recvSignals), started: time.Now(), shared: shared, addr: addr,
		chans: make(map[string]*channel), queue: make(map[string]bool),
		refusals: rate.NewLimiter(rate.Every(refusalEvery), refusalBurst),
		unheard:  make(chan struct{}, maxUnheard),
	}
	h.conns[c] = true
	if shared {
		h.shared[remote] = c
	} else {
		h.single[pkey{remote, hash}] = c
	}
	return c
}

// hashes are the files the connection was set up or queued for.
func (c *pconn) hashes() []string {
	out := []string{c.hash}
	for h := range c.queue {
		out = append(out, h)
	}
	return out
}

// dropLocked ends c: its negotiation or channels stop and its peer
// connection closes (by the goroutine that owns it).
func (h *Host) dropLocked(c *pconn) {
	c.cancel()
	c.stopIdle()
	h.forgetLocked(c)
}

// forgetLocked removes c from the Host's tables.
func (h *Host) forgetLocked(c *pconn) {
	delete(h.conns, c)
	if h.shared[c.remote] == c {
		delete(h.shared, c.remote)
	}
	if k := (pkey{c.remote, c.hash}); h.single[k] == c {
		delete(h.single, k)
	}
}

func (c *pconn) stopIdle() {
	if c.idle != nil {
		c.idle.Stop()
	}
}

// start negotiates c in a goroutine of the Host; offer is the remote's
// offer, or "" to dial.
func (h *Host) start(c *pconn, offer string) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.negotiate(c, offer)
	}()
}

// negotiate sets c up and hands its first channel to its file.
func (h *Host) negotiate(c *pconn, offer string) {
	send := func(ctx context.Context, signal string) error {
		return h.cfg.Client.Signal(ctx, c.hash, c.remote, signal)
	}
	opt := rtc.Options{
		Label: labelPrefix + c.hash,
		ICEConnected: func() {
			h.mu.Lock()
			c.proven = true
			h.mu.Unlock()
		},
	}
	nctx, stop := context.WithTimeout(c.ctx, h.cfg.SignalTimeout)
	var (
		peer  *rtc.Peer
		first rtc.Conn
		err   error
	)
	if c.initiator {
		peer, first, err = h.cfg.Transport.DialPeer(nctx, opt, send, c.recv)
	} else {
		peer, first, err = h.cfg.Transport.AcceptPeer(nctx, offer, opt, send, c.recv)
	}
	timedOut := errors.Is(nctx.Err(), context.DeadlineExceeded) && c.ctx.Err() == nil
	stop()
	if err != nil {
		if timedOut {
			err = fmt.Errorf("no connection within %s (no answer, or the peer stopped answering): %w", h.cfg.SignalTimeout, err)
		}
		h.failed(c, err)
		return
	}

	h.mu.Lock()
	if c.ctx.Err() != nil { // dropped meanwhile
		h.mu.Unlock()
		_ = peer.Close()
		return
	}
	c.peer, c.open, c.proven = peer, true, true
	if host, _, err := net.SplitHostPort(first.RemoteAddr()); err == nil {
		c.addr = host
	}
	delete(h.failures, c.remote)
	h.log.Debug("peer connection open", "peer", c.remote, "remote", first.RemoteAddr(), "initiator", c.initiator,
		"ours", peer.Extension() >= 1)
	if c.shared && peer.Extension() < 1 {
		// A prototype peer: this connection carries its first file only, and
		// the files queued on it get connections of their own.
		h.markPrototypeLocked(c.remote)
		delete(h.shared, c.remote)
		c.shared = false
		h.single[pkey{c.remote, c.hash}] = c
		queued := c.queue
		c.queue = map[string]bool{}
		for hash := range queued {
			if l := h.links[hash]; l != nil {
				l.connectLocked(c.remote)
			}
		}
	}
	// The first channel belongs to the file its label names, if we have it,
	// else to the file whose signal set the connection up.
	hash := c.hash
	if lh, ok := labelHash(first.Label()); ok && h.links[lh] == nil && c.ctx.Err() == nil {
		h.requestLocked(lh) // a file not open yet (request.go)
	}
	if lh, ok := labelHash(first.Label()); ok && h.links[lh] != nil {
		hash = lh
	}
	if l := h.links[hash]; l != nil && !l.closed {
		h.serveLocked(c, l, first, c.initiator)
	} else {
		_ = first.Close()
		if !c.shared {
			c.cancel() // its one file is gone
		}
	}
	if c.shared {
		for hash := range c.queue {
			if l := h.links[hash]; l != nil && !l.closed && c.chans[hash] == nil && len(c.chans) < h.cfg.MaxChannels {
				h.openChannelLocked(c, l)
			}
		}
		clear(c.queue)
	}
	h.idleLocked(c)
	h.mu.Unlock()

	if c.shared {
		h.acceptChannels(c)
	} else {
		<-c.ctx.Done() // the one channel ended (or the Host closed): so does the connection
	}
	h.mu.Lock()
	h.forgetLocked(c)
	c.stopIdle()
	h.mu.Unlock()
	c.cancel()
	_ = peer.Close()
}

// failed ends c's negotiation that did not open, telling the files it was
// for.
func (h *Host) failed(c *pconn, err error) {
	type note struct {
		f  func(Failure)
		fl Failure
	}
	var notes []note
	h.mu.Lock()
	dropped := c.ctx.Err() != nil // by Close, glare, eviction or the link
	h.forgetLocked(c)
	c.cancel()
	if !dropped {
		if c.initiator {
			// Only our own dials count: an offer "from" a peer (its id may be
			// forged) must not make us stop dialing it.
			h.failedLocked(c.remote, time.Now())
		}
		for _, hash := range c.hashes() {
			if l := h.links[hash]; l != nil && l.onFailure != nil {
				notes = append(notes, note{l.onFailure, Failure{Peer: c.remote, Hash: hash, Initiator: c.initiator, Err: err}})
			}
		}
	}
	h.mu.Unlock()
	if !dropped {
		h.log.Debug("could not connect", "peer", c.remote, "hash", c.hash, "err", err)
	}
	for _, n := range notes {
		n.f(n.fl)
	}
}

// acceptChannels hands the channels the remote opens on the shared
// connection c to their files, until the connection ends.
func (h *Host) acceptChannels(c *pconn) {
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.peer.Done():
			return
		case conn := <-c.peer.Incoming():
			h.incoming(c, conn)
		}
	}
}

// incoming takes a channel the remote opened: its label names the file. A
// channel for a file we neither serve nor fetch is refused by closing it.
func (h *Host) incoming(c *pconn, conn rtc.Conn) {
	hash, ok := labelHash(conn.Label())
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.links[hash]
	if l == nil && ok && c.ctx.Err() == nil {
		l = h.requestLocked(hash) // a file not open yet (request.go)
		if c.ctx.Err() != nil {
			l = nil
		}
	}
	if !ok || l == nil || l.closed || l.banned[c.remote] || len(c.chans) >= h.cfg.MaxChannels {
		h.refuseLocked(c, conn)
		return
	}
	if old := c.chans[hash]; old != nil {
		// Both sides opened a channel for the file at once: the higher id's
		// stays.
		if !old.initiator || h.selfID() > c.remote {
			h.refuseLocked(c, conn)
			return
		}
		old.cancel()
		delete(c.chans, hash)
	} else if l.sessionsLocked() >= l.maxPeers {
		h.refuseLocked(c, conn)
		return
	}
	h.serveLocked(c, l, conn, false)
}

// refuseLocked closes a channel the remote opened, and the whole connection
// once the remote has spent its budget of refused channels: each costs us a
// drain, and an honest peer rarely meets a refusal.
func (h *Host) refuseLocked(c *pconn, conn rtc.Conn) {
	_ = conn.Close()
	if !c.refusals.Allow() {
		h.log.Debug("peer keeps opening channels we refuse; closing the connection", "peer", c.remote,
			"label", conn.Label())
		h.dropLocked(c)
	}
}

// openChannelLocked opens a channel for l's file on the open shared
// connection c and serves it.
func (h *Host) openChannelLocked(c *pconn, l *Link) {
	h.startChannelLocked(c, l, true, func(ctx context.Context, ch *channel) (rtc.Conn, error) {
		var err error
		select {
		case c.unheard <- struct{}{}:
			var once sync.Once
			ch.heard = func() { once.Do(func() { <-c.unheard }) }
		case <-ctx.Done():
			err = ctx.Err()
		}
		var conn rtc.Conn
		if err == nil {
			if conn, err = c.peer.OpenChannel(ctx, labelPrefix+l.hash); err != nil {
				ch.heard()
			} else {
				// A channel the remote never answers is one its SCTP
				// lost (see maxUnheard): the connection is stuck behind
				// it, so close it and let the files find the peer again.
				stuck := time.AfterFunc(unheardTimeout, func() {
					h.mu.Lock()
					defer h.mu.Unlock()
					l.log.Debug("a channel we opened was never answered; closing the connection", "peer", c.remote)
					h.dropLocked(c)
				})
				heard := ch.heard
				ch.heard = func() { stuck.Stop(); heard() }
			}
		}
		if err != nil {
			h.mu.Lock()
			if c.chans[l.hash] == ch {
				delete(c.chans, l.hash)
			}
			h.idleLocked(c)
			h.mu.Unlock()
			l.log.Debug("could not open a channel", "peer", c.remote, "err", err)
		}
		return conn, err
	})
}

// serveLocked runs l's torrent on conn, a channel of c.
func (h *Host) serveLocked(c *pconn, l *Link, conn rtc.Conn, initiator bool) {
	h.startChannelLocked(c, l, initiator, func(context.Context, *channel) (rtc.Conn, error) { return conn, nil })
}

// startChannelLocked registers l's channel on c and runs the torrent on the
// channel that open gives, in a goroutine that h and l wait for.
func (h *Host) startChannelLocked(c *pconn, l *Link, initiator bool,
	open func(context.Context, *channel) (rtc.Conn, error)) {
	ctx, cancel := context.WithCancel(c.ctx)
	ch := &channel{initiator: initiator, cancel: cancel, heard: func() {}}
	c.chans[l.hash] = ch
	c.stopIdle()
	h.wg.Add(1)
	l.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer l.wg.Done()
		conn, err := open(ctx, ch)
		if err != nil {
			cancel()
			return
		}
		h.runChannel(ctx, c, l, ch, conn)
	}()
}

// runChannel runs the torrent on one channel until it ends, then lets the
// connection go idle (shared) or close (one file).
func (h *Host) runChannel(ctx context.Context, c *pconn, l *Link, ch *channel, conn rtc.Conn) {
	defer ch.cancel()
	defer ch.heard()
	cc := &countingConn{Conn: conn, heard: ch.heard}
	l.log.Debug("channel open", "peer", c.remote, "remote", conn.RemoteAddr(), "initiator", ch.initiator)
	if c.peer != nil && c.peer.Extension() >= 1 {
		ctx = swarm.PeerOfOurs(ctx) // our seeders answer a first request sent with the handshake
	}
	err := l.torrent.AddPeer(ctx, cc, ch.initiator, conn.RemoteAddr())
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.chans[l.hash] == ch {
		delete(c.chans, l.hash)
	}
	if errors.Is(err, swarm.ErrBanned) {
		l.banned[c.remote] = true
	}
	// A channel we opened that the remote closed before saying anything was
	// refused: it does not have the file.
	if ch.initiator && cc.read.Load() == 0 && ctx.Err() == nil {
		l.refusedLocked(c.remote, time.Now())
	}
	if err != nil && ctx.Err() == nil {
		l.log.Debug("peer session ended", "peer", c.remote, "err", err)
	}
	if !c.shared {
		c.cancel() // one file per connection: it ends with its channel
		return
	}
	h.idleLocked(c)
}

// idleLocked closes the open shared connection c after IdleTimeout without
// channels.
func (h *Host) idleLocked(c *pconn) {
	if !c.open || !c.shared || len(c.chans) > 0 || c.ctx.Err() != nil {
		return
	}
	c.stopIdle()
	c.idle = time.AfterFunc(h.cfg.IdleTimeout, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(c.chans) == 0 && h.conns[c] {
			h.dropLocked(c)
		}
	})
}

// labelHash returns the full hash a channel label p2pcdn/<hash> names.
func labelHash(label string) (string, bool) {
	h, ok := strings.CutPrefix(label, labelPrefix)
	return h, ok && content.ValidHash(h)
}

// countingConn counts the bytes read, to tell a refused channel (closed
// before a byte came) from one that ended later.
type countingConn struct {
	rtc.Conn
	read  atomic.Int64
	heard func() // called on every read that returned bytes
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.read.Add(int64(n))
		c.heard()
	}
	return n, err
}

package peering

import (
	"log/slog"
	"sync"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
)

// LinkConfig configures one file's Link on a Host.
type LinkConfig struct {
	Hash    string // full hash, 40 lowercase hex
	Torrent Torrent
	// MaxPeers bounds the file's sessions: channels, negotiations and places
	// in the queue of a connection being set up.
	MaxPeers int
	// OnFailure, if set, is called (without locks held; it must not block)
	// for each attempt to connect a peer for this file that ended before its
	// channel opened, other than by Close.
	OnFailure func(Failure)
}

// Link is one file's presence on a Host: it routes the file's mediation
// events, dials the peers it is asked to, and runs the torrent on every
// channel for the file. It owns the goroutine that routes events and waits
// in Close for the file's channels to end.
type Link struct {
	h         *Host
	hash      string
	torrent   Torrent
	log       *slog.Logger
	maxPeers  int
	onFailure func(Failure)
	sub       *mediatorclient.Subscription
	peers     chan []string
	routed    chan struct{} // closed when route returns
	wg        sync.WaitGroup
	private   bool // Join's own Host, closed with the link

	// Guarded by h.mu.
	closed  bool
	banned  map[string]bool
	refused map[string]time.Time // peers that refused the file's channel
}

// Join adds a file to the Host. Joining a hash twice replaces nothing: the
// second Link gets no events; close the first one first.
func (h *Host) Join(cfg LinkConfig) *Link {
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	l := &Link{
		h: h, hash: cfg.Hash, torrent: cfg.Torrent, log: h.log.With("hash", cfg.Hash),
		maxPeers: cfg.MaxPeers, onFailure: cfg.OnFailure,
		sub:     h.cfg.Client.Subscribe(cfg.Hash),
		peers:   make(chan []string, 1),
		routed:  make(chan struct{}),
		banned:  make(map[string]bool),
		refused: make(map[string]time.Time),
	}
	h.mu.Lock()
	if h.closed || h.links[cfg.Hash] != nil {
		l.closed = true
	} else {
		h.links[cfg.Hash] = l
	}
	h.mu.Unlock()
	go l.route()
	return l
}

// Peers delivers the mediator's answers to get_peers for the hash, newest
// first: an answer not yet taken is replaced by a newer one.
func (l *Link) Peers() <-chan []string { return l.peers }

// Sessions returns how many peers are negotiating or connected for the
// file.
func (l *Link) Sessions() int {
	l.h.mu.Lock()
	defer l.h.mu.Unlock()
	return l.sessionsLocked()
}

// sessionsLocked counts the file's channels, the negotiations started for
// it and its places in queues.
func (l *Link) sessionsLocked() int {
	n := 0
	for c := range l.h.conns {
		if c.chans[l.hash] != nil || (!c.open && (c.hash == l.hash || c.queue[l.hash])) {
			n++
		}
	}
	return n
}

// Connect gets the file from peerID in the background: a channel on the
// open connection with it, a place in the queue of one being set up, or a
// new connection. It does nothing if the file has a session with the peer,
// the peer is banned, refused the file lately, is us, the link is full, or
// it failed MaxAttempts dials in a row lately. It reports whether it
// started something.
func (l *Link) Connect(peerID string) bool {
	if peerID == l.h.selfID() {
		return false
	}
	l.h.mu.Lock()
	defer l.h.mu.Unlock()
	return l.connectLocked(peerID)
}

func (l *Link) connectLocked(peer string) bool {
	h := l.h
	now := time.Now()
	if h.closed || l.closed || peer == h.selfID() || l.banned[peer] || h.gaveUpLocked(peer, now) ||
		now.Sub(l.refused[peer]) < refusedMemory || l.sessionsLocked() >= l.maxPeers {
		return false
	}
	if c := h.single[pkey{peer, l.hash}]; c != nil {
		return false
	}
	if c := h.shared[peer]; c != nil {
		if c.chans[l.hash] != nil || (!c.open && (c.hash == l.hash || c.queue[l.hash])) {
			return false
		}
		if !c.open {
			c.queue[l.hash] = true
			return true
		}
		if len(c.chans) >= h.cfg.MaxChannels {
			return false
		}
		h.openChannelLocked(c, l)
		return true
	}
	if len(h.conns) >= h.cfg.MaxConns {
		return false
	}
	// A peer we know to be a prototype peer gets a connection for this file
	// alone; any other may turn out to be ours, and share it.
	c := h.newConnLocked(peer, l.hash, true, !h.proto[peer], "")
	h.start(c, "")
	return true
}

// GaveUp reports whether Connect skips peerID for now: it failed
// MaxAttempts dials in a row, the last within FailureMemory.
func (l *Link) GaveUp(peerID string) bool {
	l.h.mu.Lock()
	defer l.h.mu.Unlock()
	return l.h.gaveUpLocked(peerID, time.Now())
}

// Close stops routing, ends the file's channels and negotiations, and waits
// for them.
func (l *Link) Close() {
	h := l.h
	h.mu.Lock()
	wasOpen := !l.closed
	l.closed = true
	if h.links[l.hash] == l {
		delete(h.links, l.hash)
	}
	if wasOpen {
		for c := range h.conns {
			if ch := c.chans[l.hash]; ch != nil {
				ch.cancel()
			}
			delete(c.queue, l.hash)
			// A negotiation for this file alone is of no use any more.
			if !c.open && c.hash == l.hash && len(c.queue) == 0 {
				h.dropLocked(c)
			}
		}
	}
	h.mu.Unlock()
	l.sub.Close()
	<-l.routed
	l.wg.Wait()
	if l.private {
		h.Close()
	}
}

func (l *Link) route() {
	defer close(l.routed)
	for ev := range l.sub.C {
		switch ev := ev.(type) {
		case mediatorclient.Peers:
			l.offerPeers(ev.IDs)
		case mediatorclient.Signal:
			l.h.onSignal(l, ev.From, ev.Data)
		}
	}
}

// offerPeers replaces an answer nobody took yet with the newer one.
func (l *Link) offerPeers(ids []string) {
	for {
		select {
		case l.peers <- ids:
			return
		default:
		}
		select {
		case <-l.peers:
		default:
		}
	}
}

// refusedLocked notes that peer refused the file's channel.
func (l *Link) refusedLocked(peer string, now time.Time) {
	for p, at := range l.refused {
		if len(l.refused) < maxRecords {
			break
		}
		if now.Sub(at) >= refusedMemory || len(l.refused) >= maxRecords {
			delete(l.refused, p)
		}
	}
	l.refused[peer] = now
}

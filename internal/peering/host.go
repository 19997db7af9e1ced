package peering

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
)

// HostConfig configures a Host.
type HostConfig struct {
	Client    *mediatorclient.Client
	Transport *rtc.Transport
	Logger    *slog.Logger
	// MaxConns bounds the peer connections, negotiating or open. An offer
	// that finds them all taken takes the place of the oldest offer still
	// negotiating whose remote has not proved reachable (ICE found no path
	// yet), so a flood of bogus offers cannot keep real peers out.
	MaxConns int
	// MaxPerAddress bounds the connections with one remote address (an
	// offer's first candidate until ICE connects, then the address it
	// connected to); past it, an offer from that address takes the place of
	// the oldest unproven one from the same address.
	MaxPerAddress int
	// MaxChannels bounds the channels on one connection.
	MaxChannels int
	// SignalTimeout bounds one WebRTC negotiation.
	SignalTimeout time.Duration
	// MaxAttempts and FailureMemory: after MaxAttempts failed dials in a row,
	// each within FailureMemory of the last, Connect skips the peer until
	// FailureMemory has passed.
	MaxAttempts   int
	FailureMemory time.Duration
	// IdleTimeout: a shared connection with no channel left is closed after
	// this long.
	IdleTimeout time.Duration
}

func (c *HostConfig) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxConns, DefaultMaxConns)
	def(&c.MaxPerAddress, DefaultMaxPerAddress)
	def(&c.MaxChannels, DefaultMaxChannels)
	def(&c.MaxAttempts, DefaultMaxAttempts)
	defDur(&c.SignalTimeout, DefaultSignalTimeout)
	defDur(&c.FailureMemory, DefaultFailureMemory)
	defDur(&c.IdleTimeout, DefaultIdleTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Host owns a process's peer connections on one mediator: one connection
// per remote peer of ours, carrying a channel per file, and one per file
// toward prototype peers. It owns a goroutine per negotiation, per open
// shared connection and per channel; Close stops them all.
type Host struct {
	cfg    HostConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	links    map[string]*Link   // by hash
	conns    map[*pconn]bool    // every connection, negotiating or open
	shared   map[string]*pconn  // by remote id: the connection that carries (or may carry) several files
	single   map[pkey]*pconn    // by remote id and hash: connections for one file (prototype peers)
	proto    map[string]bool    // remote ids known to be prototype peers (one file per connection)
	failures map[string]failure // by remote id: our failed dials in a row

	onRequest func(hash string) bool // see OnRequest (request.go)
}

type pkey struct{ peer, hash string }

// failure counts a peer's failed dials in a row.
type failure struct {
	n    int
	last time.Time
}

// NewHost returns a Host that runs until ctx ends or Close.
func NewHost(ctx context.Context, cfg HostConfig) *Host {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(ctx)
	return &Host{
		cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel,
		links:    make(map[string]*Link),
		conns:    make(map[*pconn]bool),
		shared:   make(map[string]*pconn),
		single:   make(map[pkey]*pconn),
		proto:    make(map[string]bool),
		failures: make(map[string]failure),
	}
}

// selfID is our peer id now: the client takes a fresh one if a mediator
// refused it (glare and self checks must use the current one).
func (h *Host) selfID() string { return h.cfg.Client.PeerID() }

// Conns returns how many peer connections are negotiating or open.
func (h *Host) Conns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Close ends every link, channel and connection and waits for their
// goroutines.
func (h *Host) Close() {
	h.mu.Lock()
	h.closed = true
	links := make([]*Link, 0, len(h.links))
	for _, l := range h.links {
		links = append(links, l)
	}
	h.cancel()
	for c := range h.conns {
		c.stopIdle()
	}
	h.mu.Unlock()
	for _, l := range links {
		l.Close()
	}
	h.wg.Wait()
}

// onSignal handles a signal from peer from about link l's hash.
func (h *Host) onSignal(l *Link, from, data string) {
	if from == h.selfID() {
		return
	}
	sig, err := rtc.ParseSignal(data)
	if err != nil {
		l.log.Debug("dropping a bad signal", "from", from, "err", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || l.closed {
		return
	}
	if sig.Type != rtc.SignalOffer {
		if c := h.negotiationLocked(from, l.hash); c != nil {
			select {
			case c.recv <- data:
			default: // a peer flooding signals loses them; its negotiation times out
			}
		}
		return
	}
	if l.banned[from] {
		return
	}
	ours := sig.P2PCDN >= 1
	old := h.single[pkey{from, l.hash}]
	if s := h.shared[from]; s != nil && (ours || s.open || s.hash == l.hash) {
		// A peer of ours offers again, or offers as a prototype peer while a
		// connection with it is open (forged, surely), or the peer we dialed
		// for this file, not knowing what it is, offers it too.
		old = s
	}
	var requeue []string
	if old != nil {
		// A connection carrying channels is never torn down by an offer:
		// sender ids can be forged, and a real peer that lost its connection
		// finds out and retries once ours has failed too. An idle one gives
		// way: the remote closed it (we may not have heard yet) and dials
		// again, and there is nothing on it to lose.
		if old.open && len(old.chans) > 0 {
			l.log.Debug("ignoring an offer from a peer with an established connection", "from", from)
			return
		}
		// Both sides dialed each other at once: the offer of the peer with
		// the higher id wins, so exactly one connection survives.
		if !old.open && old.initiator && h.selfID() > from {
			return
		}
		requeue = old.hashes()
		h.dropLocked(old)
	}
	addr := rtc.FirstCandidateAddress(sig.SDP)
	if h.countAddrLocked(addr) >= h.cfg.MaxPerAddress && !h.evictLocked(addr) {
		l.log.Debug("refusing an offer: too many connections with its address", "from", from, "addr", addr)
		return
	}
	if len(h.conns) >= h.cfg.MaxConns && !h.evictLocked("") {
		l.log.Debug("refusing an offer: too many connections", "from", from)
		return
	}
	if l.sessionsLocked() >= l.maxPeers {
		l.log.Debug("refusing an offer: too many peers for the file", "from", from)
		return
	}
	c := h.newConnLocked(from, l.hash, false, ours, addr)
	for _, hash := range requeue {
		if hash == l.hash {
			continue
		}
		if c.shared {
			c.queue[hash] = true
		} else if other := h.links[hash]; other != nil {
			other.connectLocked(from) // a connection of its own, once this one is under way
		}
	}
	h.start(c, data)
}

// negotiationLocked returns the connection negotiating with peer over
// signals about hash.
func (h *Host) negotiationLocked(peer, hash string) *pconn {
	if c := h.shared[peer]; c != nil && c.hash == hash && !c.open {
		return c
	}
	if c := h.single[pkey{peer, hash}]; c != nil && !c.open {
		return c
	}
	return nil
}

// countAddrLocked counts the connections with remote address addr.
func (h *Host) countAddrLocked(addr string) int {
	n := 0
	for c := range h.conns {
		if c.addr == addr {
			n++
		}
	}
	return n
}

// evictLocked drops the oldest connection that answers an offer and whose
// remote has not proved reachable, from address addr unless addr is "", and
// reports whether there was one.
func (h *Host) evictLocked(addr string) bool {
	var oldest *pconn
	for c := range h.conns {
		if c.initiator || c.proven || c.open || (addr != "" && c.addr != addr) {
			continue
		}
		if oldest == nil || c.started.Before(oldest.started) {
			oldest = c
		}
	}
	if oldest == nil {
		return false
	}
	h.log.Debug("dropping an unproven offer for a newer one", "peer", oldest.remote)
	h.dropLocked(oldest)
	return true
}

// gaveUpLocked reports whether Connect skips peer for now.
func (h *Host) gaveUpLocked(peer string, now time.Time) bool {
	f, ok := h.failures[peer]
	return ok && f.n >= h.cfg.MaxAttempts && now.Sub(f.last) < h.cfg.FailureMemory
}

// failedLocked counts a failed dial to peer.
func (h *Host) failedLocked(peer string, now time.Time) {
	f := h.failures[peer]
	if now.Sub(f.last) >= h.cfg.FailureMemory {
		f.n = 0
	}
	f.n++
	f.last = now
	if _, known := h.failures[peer]; !known {
		for p, old := range h.failures { // forget the expired, or else any
			if len(h.failures) < maxRecords {
				break
			}
			if now.Sub(old.last) >= h.cfg.FailureMemory || len(h.failures) >= maxRecords {
				delete(h.failures, p)
			}
		}
	}
	h.failures[peer] = f
}

// markPrototypeLocked remembers that peer takes one file per connection.
func (h *Host) markPrototypeLocked(peer string) {
	for p := range h.proto {
		if len(h.proto) < maxRecords {
			break
		}
		delete(h.proto, p)
	}
	h.proto[peer] = true
}

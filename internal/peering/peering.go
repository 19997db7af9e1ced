// Package peering joins a torrent to the peers a mediator knows: it answers
// the WebRTC offers that arrive as mediation signals for one hash, dials the
// peers it is asked to, and hands every open data channel to the torrent.
//
// Both the seeder and the downloader use it: a downloader also answers
// offers, because it re-shares what it has while it downloads.
package peering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/swarm"
)

// Defaults for Config's zero fields.
const (
	DefaultMaxPeers = 64
	// DefaultMaxPerAddress is a quarter of DefaultMaxPeers: room for a few
	// peers behind one NAT, not for one host taking every slot.
	DefaultMaxPerAddress = 16
	// DefaultSignalTimeout bounds a negotiation whose answer or channel never comes; one whose ICE
	// failed ends at once (rtc gives up within seconds).
	DefaultSignalTimeout = 15 * time.Second
	// DefaultMaxAttempts is how many failed attempts in a row to connect a peer are made before
	// Connect skips it (for DefaultFailureMemory).
	DefaultMaxAttempts = 2
	// DefaultFailureMemory is how long a failed attempt counts.
	DefaultFailureMemory = time.Minute
)

// maxFailureRecords bounds the peers whose failures a Link remembers.
const maxFailureRecords = 1024

// Failure is an attempt to connect a peer that ended before its data channel opened.
type Failure struct {
	Peer      string // the remote peer id
	Initiator bool   // we dialed; otherwise we answered its offer
	// Err says why; an *rtc.ICEError (errors.As) when ICE found no path between the peers.
	Err error
}

// Config configures a Link.
type Config struct {
	Hash      string // full hash, 40 lowercase hex
	Client    *mediatorclient.Client
	Transport *rtc.Transport
	Torrent   *swarm.Torrent
	Logger    *slog.Logger
	// MaxPeers bounds the sessions (negotiating or connected) of this hash,
	// so a flood of offers cannot exhaust the process. An offer that finds
	// the link full takes the slot of the oldest offer still negotiating
	// whose remote has not proved reachable, so such a flood cannot keep
	// real peers out either.
	MaxPeers int
	// MaxPerAddress bounds the sessions with one remote address (an offer's
	// first candidate until ICE connects, then the address it connected
	// to); past it, an offer from that address takes the slot of the oldest
	// unproven one from the same address.
	MaxPerAddress int
	// SignalTimeout bounds one WebRTC negotiation.
	SignalTimeout time.Duration
	// MaxAttempts and FailureMemory: after MaxAttempts failed dials in a row, each within
	// FailureMemory of the last, Connect skips the peer until FailureMemory has passed.
	MaxAttempts   int
	FailureMemory time.Duration
	// OnFailure, if set, is called (from the session's goroutine; it must not block) for each attempt
	// that ended before its channel opened, other than by Close.
	OnFailure func(Failure)
}

// Link is one hash's presence on one mediator. It owns a goroutine that
// routes the hash's signals and one goroutine per peer session; Close stops
// them all.
type Link struct {
	cfg    Config
	self   string
	log    *slog.Logger
	sub    *mediatorclient.Subscription
	peers  chan []string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*session // by remote peer id
	banned   map[string]bool
	failures map[string]failures // by remote peer id
}

// failures are a peer's failed attempts in a row.
type failures struct {
	n    int
	last time.Time
}

// session is one remote peer, negotiating or connected.
type session struct {
	recv      chan string // signals from the remote peer for rtc
	initiator bool        // we sent the offer
	ctx       context.Context
	cancel    context.CancelFunc
	started   time.Time
	// addr is where the remote is: the first candidate address of its
	// offer, then the address ICE connected to. Guarded by Link.mu, as are
	// proven (ICE found a path, so the remote is real) and open (the channel
	// is up: the session is established).
	addr   string
	proven bool
	open   bool
}

// Join starts routing hash's signals to cfg.Torrent until ctx ends or Close.
func Join(ctx context.Context, cfg Config) *Link {
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.SignalTimeout <= 0 {
		cfg.SignalTimeout = DefaultSignalTimeout
	}
	if cfg.MaxPerAddress <= 0 {
		cfg.MaxPerAddress = DefaultMaxPerAddress
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.FailureMemory <= 0 {
		cfg.FailureMemory = DefaultFailureMemory
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Link{
		cfg:      cfg,
		self:     cfg.Client.PeerID(),
		log:      log.With("hash", cfg.Hash),
		sub:      cfg.Client.Subscribe(cfg.Hash),
		peers:    make(chan []string, 1),
		ctx:      ctx,
		cancel:   cancel,
		sessions: make(map[string]*session),
		banned:   make(map[string]bool),
		failures: make(map[string]failures),
	}
	l.wg.Add(1)
	go l.route()
	return l
}

// Peers delivers the mediator's answers to get_peers for the hash, newest
// first: an answer not yet taken is replaced by a newer one.
func (l *Link) Peers() <-chan []string { return l.peers }

// Sessions returns how many peers are negotiating or connected.
func (l *Link) Sessions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sessions)
}

// Connect dials peerID in the background unless a session with it exists,
// it is banned, it is us, the link is full, or it has failed MaxAttempts
// times in a row lately. It reports whether it dialed.
func (l *Link) Connect(peerID string) bool {
	if peerID == l.self {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil || l.sessions[peerID] != nil || l.banned[peerID] || len(l.sessions) >= l.cfg.MaxPeers ||
		l.gaveUpLocked(peerID, time.Now()) {
		return false
	}
	l.start(peerID, true, "", "")
	return true
}

// GaveUp reports whether Connect skips peerID for now: it failed
// MaxAttempts times in a row, the last within FailureMemory.
func (l *Link) GaveUp(peerID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gaveUpLocked(peerID, time.Now())
}

func (l *Link) gaveUpLocked(peer string, now time.Time) bool {
	f, ok := l.failures[peer]
	return ok && f.n >= l.cfg.MaxAttempts && now.Sub(f.last) < l.cfg.FailureMemory
}

// failedLocked counts a failed attempt with peer.
func (l *Link) failedLocked(peer string, now time.Time) {
	f := l.failures[peer]
	if now.Sub(f.last) >= l.cfg.FailureMemory {
		f.n = 0
	}
	f.n++
	f.last = now
	if _, known := l.failures[peer]; !known && len(l.failures) >= maxFailureRecords {
		for p, old := range l.failures { // forget the expired, or else any one
			if now.Sub(old.last) >= l.cfg.FailureMemory || len(l.failures) >= maxFailureRecords {
				delete(l.failures, p)
			}
			if len(l.failures) < maxFailureRecords/2 {
				break
			}
		}
	}
	l.failures[peer] = f
}

// Close stops routing, ends every session and waits for their goroutines.
func (l *Link) Close() {
	// Cancel under mu: start (called with mu held after checking ctx) then
	// either ran before, so its wg.Add precedes Wait, or sees ctx done.
	l.mu.Lock()
	l.cancel()
	l.mu.Unlock()
	l.sub.Close()
	l.wg.Wait()
}

func (l *Link) route() {
	defer l.wg.Done()
	for {
		select {
		case <-l.ctx.Done():
			return
		case ev, ok := <-l.sub.C:
			if !ok {
				return
			}
			switch ev := ev.(type) {
			case mediatorclient.Peers:
				l.offerPeers(ev.IDs)
			case mediatorclient.Signal:
				l.onSignal(ev.From, ev.Data)
			}
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

func (l *Link) onSignal(from, data string) {
	if from == l.self {
		return
	}
	sig, err := rtc.ParseSignal(data)
	if err != nil {
		l.log.Debug("dropping a bad signal", "from", from, "err", err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sessions[from]
	if sig.Type != rtc.SignalOffer {
		if s != nil {
			select {
			case s.recv <- data:
			default: // a peer flooding signals loses them; its negotiation times out
			}
		}
		return
	}
	if l.banned[from] || l.ctx.Err() != nil {
		return
	}
	if s != nil {
		// An established session is never torn down by an offer: sender ids
		// can be forged, and a real peer that lost its connection finds out
		// and retries once ours has failed too.
		if s.open {
			l.log.Debug("ignoring an offer from a peer with an established session", "from", from)
			return
		}
		// Both sides dialed each other at once: the offer of the peer with
		// the higher id wins, so exactly one connection survives.
		if s.initiator && l.self > from {
			return
		}
		s.cancel()
		delete(l.sessions, from)
	}
	addr := rtc.FirstCandidateAddress(sig.SDP)
	if l.countAddrLocked(addr) >= l.cfg.MaxPerAddress && !l.evictLocked(addr) {
		l.log.Debug("refusing an offer: too many sessions with its address", "from", from, "addr", addr)
		return
	}
	if len(l.sessions) >= l.cfg.MaxPeers && !l.evictLocked("") {
		l.log.Debug("refusing an offer: too many peers", "from", from)
		return
	}
	l.start(from, false, data, addr)
}

// countAddrLocked counts the sessions with remote address addr.
func (l *Link) countAddrLocked(addr string) int {
	n := 0
	for _, s := range l.sessions {
		if s.addr == addr {
			n++
		}
	}
	return n
}

// evictLocked ends the oldest session that answers an offer and whose
// remote has not proved reachable (ICE found no path yet), from address
// addr unless addr is "", and reports whether there was one.
func (l *Link) evictLocked(addr string) bool {
	var oldest *session
	var peer string
	for p, s := range l.sessions {
		if s.initiator || s.proven || s.open || (addr != "" && s.addr != addr) {
			continue
		}
		if oldest == nil || s.started.Before(oldest.started) {
			oldest, peer = s, p
		}
	}
	if oldest == nil {
		return false
	}
	l.log.Debug("dropping an unproven offer for a newer one", "peer", peer)
	oldest.cancel()
	delete(l.sessions, peer)
	return true
}

// start runs a session with peer; l.mu is held.
func (l *Link) start(peer string, initiator bool, offer, addr string) {
	ctx, cancel := context.WithCancel(l.ctx)
	s := &session{recv: make(chan string, 16), initiator: initiator, ctx: ctx, cancel: cancel,
		started: time.Now(), addr: addr}
	l.sessions[peer] = s
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer cancel()
		connected, err := l.run(ctx, peer, s, offer)
		failed := !connected && ctx.Err() == nil // not ended by Close or a newer session
		l.mu.Lock()
		if l.sessions[peer] == s {
			delete(l.sessions, peer)
		}
		if errors.Is(err, swarm.ErrBanned) {
			l.banned[peer] = true
		}
		switch {
		case failed && initiator:
			// Only our own dials count: an offer "from" a peer (its id may be forged) must not make
			// us stop dialing it.
			l.failedLocked(peer, time.Now())
		case connected:
			delete(l.failures, peer)
		}
		l.mu.Unlock()
		if failed && l.cfg.OnFailure != nil {
			l.cfg.OnFailure(Failure{Peer: peer, Initiator: initiator, Err: err})
		}
		if err != nil && ctx.Err() == nil {
			l.log.Debug("peer session ended", "peer", peer, "err", err)
		}
	}()
}

// run negotiates with peer and runs the torrent's peer protocol on the
// channel; connected reports whether the channel opened.
func (l *Link) run(ctx context.Context, peer string, s *session, offer string) (connected bool, err error) {
	send := func(ctx context.Context, signal string) error {
		return l.cfg.Client.Signal(ctx, l.cfg.Hash, peer, signal)
	}
	nctx, stop := context.WithTimeout(ctx, l.cfg.SignalTimeout)
	opt := rtc.Options{ICEConnected: func() {
		l.mu.Lock()
		s.proven = true
		l.mu.Unlock()
	}}
	var (
		pc   *rtc.Peer
		conn rtc.Conn
	)
	if s.initiator {
		pc, conn, err = l.cfg.Transport.DialPeer(nctx, opt, send, s.recv)
	} else {
		pc, conn, err = l.cfg.Transport.AcceptPeer(nctx, offer, opt, send, s.recv)
	}
	timedOut := errors.Is(nctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	stop()
	if err != nil {
		if timedOut {
			err = fmt.Errorf("no connection within %s (no answer, or the peer stopped answering): %w", l.cfg.SignalTimeout, err)
		}
		return false, err
	}
	defer pc.Close() // one connection per file and peer
	l.mu.Lock()
	s.open, s.proven = true, true
	if host, _, err := net.SplitHostPort(conn.RemoteAddr()); err == nil {
		s.addr = host
	}
	l.mu.Unlock()
	l.log.Debug("peer connected", "peer", peer, "remote", conn.RemoteAddr(), "initiator", s.initiator)
	return true, l.cfg.Torrent.AddPeer(ctx, conn, s.initiator, conn.RemoteAddr())
}

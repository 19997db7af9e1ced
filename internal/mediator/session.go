package mediator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// conn is the server's state for one connection. Its Event and Closed are
// never called concurrently (socketio.Session); only shook is also read by
// the handshake timer.
type conn struct {
	s          *Server
	c          *socketio.Conn
	events     *rate.Limiter // events per second
	hashes     *rate.Limiter // hashes named per second
	deadline   *time.Timer   // handshake timeout
	shook      atomic.Bool   // handshaken, for the timer
	strikes    int
	lastStrike time.Time // of the rate limit, which strikes at most once a second
	logged     uint16    // dropReason bits already logged, to keep floods out of the log
	self       *peer     // set after a MEDIATION handshake
	mediatorID string    // set after a REPLICATION handshake
}

func (h *conn) handshaken() bool { return h.self != nil || h.mediatorID != "" }

func (h *conn) handshakeTimeout() {
	if h.shook.Load() {
		return
	}
	h.s.metrics.closed(closeHandshakeTimeout)
	h.log(slog.LevelInfo, "closing connection without handshake")
	h.c.Close()
}

// Event handles one event (socketio.Session).
func (h *conn) Event(ev socketio.Event) {
	if !h.dispatch(ev) {
		h.c.Close()
	}
}

// Closed forgets the connection (socketio.Session).
func (h *conn) Closed() {
	h.deadline.Stop()
	h.cleanup()
	h.s.metrics.connections.Dec()
	h.s.handlers.Done()
}

func (h *conn) cleanup() {
	if h.self != nil {
		h.s.reg.unregister(h.self)
		h.log(slog.LevelDebug, "peer left", "peer", h.self.id)
	}
	if h.mediatorID != "" {
		h.s.routes.drop(h)
		h.s.metrics.replications.Dec()
	}
}

func (h *conn) log(level slog.Level, msg string, args ...any) {
	l := h.s.logger()
	if !l.Enabled(context.Background(), level) {
		return
	}
	l.Log(context.Background(), level, msg, append([]any{"conn", h.c.ID(), "client", h.c.ClientAddr()}, args...)...)
}

// drop counts a dropped event, logs the first drop of each kind per
// connection (floods would fill the log otherwise), and reports whether the
// connection may stay open.
func (h *conn) drop(reason string, strike bool, err error) bool {
	h.s.metrics.drop(reason)
	for i, r := range dropReasons {
		if r == reason && h.logged&(1<<i) == 0 {
			h.logged |= 1 << i
			level := slog.LevelInfo
			if !strike {
				level = slog.LevelDebug
			}
			h.log(level, "dropped event", "reason", reason, "err", err)
		}
	}
	if !strike {
		return true
	}
	h.strikes++
	if h.strikes >= h.s.lim.maxStrikes {
		h.s.metrics.closed(closeMisbehaving)
		h.log(slog.LevelWarn, "closing misbehaving connection", "strikes", h.strikes, "last_reason", reason)
		return false
	}
	return true
}

// rateLimited drops an event beyond the connection's rates. It strikes at
// most once a second: events that arrive bunched after a stall are dropped
// but do not close the connection; only a client over its rate for many
// seconds is closed.
func (h *conn) rateLimited(err error) bool {
	now := time.Now()
	strike := now.Sub(h.lastStrike) >= time.Second
	if strike {
		h.lastStrike = now
	}
	return h.drop(dropRateLimited, strike, err)
}

// hashesOf returns how many hashes an event names, for the hash rate, and
// whether it is a batch event.
func hashesOf(m mediation.Message) (n int, batch bool) {
	switch m := m.(type) {
	case mediation.GetPeers, mediation.Announce, mediation.Finish:
		return 1, false
	case mediation.AnnounceMany:
		return len(m.Hashes), true
	case mediation.FinishMany:
		return len(m.Hashes), true
	case mediation.GetPeersMany:
		return len(m.Hashes), true
	}
	return 0, false
}

// dispatch handles one event and reports whether the connection stays open.
func (h *conn) dispatch(ev socketio.Event) bool {
	h.s.metrics.event(ev.Name)
	if !h.events.Allow() {
		return h.rateLimited(fmt.Errorf("more than %v events per second", h.events.Limit()))
	}
	m, err := mediation.Decode(ev.Name, ev.Args)
	if errors.Is(err, mediation.ErrUnknownEvent) {
		return h.drop(dropUnknownEvent, false, err)
	}
	if err != nil {
		return h.drop(dropMalformed, true, err)
	}
	n, batch := hashesOf(m)
	if batch && h.s.lim.batch == 0 {
		return h.drop(dropUnknownEvent, false, fmt.Errorf("%s: batch events are off", ev.Name))
	}
	if batch && n > h.s.lim.batch {
		return h.drop(dropMalformed, true, fmt.Errorf("%s with %d hashes, more than the %d allowed", ev.Name, n, h.s.lim.batch))
	}
	if n > 0 && !h.hashes.AllowN(time.Now(), n) {
		return h.rateLimited(fmt.Errorf("more than %v hashes per second", h.hashes.Limit()))
	}
	h.s.metrics.named(m, n)
	if hs, ok := m.(mediation.Handshake); ok {
		return h.handshake(hs)
	}
	switch {
	case h.self != nil:
		return h.fromPeer(m)
	case h.mediatorID != "":
		return h.fromMediator(m)
	}
	return h.drop(dropBeforeHandshake, false, fmt.Errorf("%s before handshake", ev.Name))
}

func (h *conn) handshake(m mediation.Handshake) bool {
	if h.handshaken() {
		same := (h.self != nil && m.Type == mediation.Mediation && h.self.id == m.ID) ||
			(h.mediatorID != "" && m.Type == mediation.Replication && h.mediatorID == m.ID)
		if !same {
			return h.drop(dropUnexpected, true, errors.New("second handshake with another id or type"))
		}
		return h.s.emit(h.c, h.established()) == nil
	}
	switch m.Type {
	case mediation.Mediation:
		p, err := h.s.reg.register(m.ID, h.c, h.c.ClientAddr())
		if err != nil {
			h.s.metrics.closed(closeIDTaken)
			h.log(slog.LevelWarn, "refusing handshake", "peer", m.ID, "err", err)
			return false
		}
		h.self = p
		h.shook.Store(true)
		h.deadline.Stop()
		h.log(slog.LevelDebug, "peer joined", "peer", m.ID)
	case mediation.Replication:
		h.mediatorID = m.ID
		h.shook.Store(true)
		h.deadline.Stop()
		h.s.metrics.replications.Inc()
		h.log(slog.LevelInfo, "mediator connected", "mediator", m.ID)
	}
	return h.s.emit(h.c, h.established()) == nil
}

func (h *conn) fromPeer(m mediation.Message) bool {
	s := h.s
	switch m := m.(type) {
	case mediation.GetPeers:
		defer s.metrics.observeGetPeers(time.Now())
		max := s.lim.maxPeers
		ids := s.reg.seeders(m.Hash, h.self.id, max)
		if len(ids) < max && s.Federation != nil {
			ids = appendRemote(ids, s.Federation.RemotePeers(m.Hash, max-len(ids)), h.self.id, max)
		}
		s.metrics.peersAnswers.Inc()
		return s.emit(h.c, mediation.Peers{Hash: m.Hash, IDs: ids}) == nil
	case mediation.GetPeersMany:
		return h.getPeersMany(m.Hashes)
	case mediation.Announce:
		return h.announce([]string{m.Hash})
	case mediation.AnnounceMany:
		return h.announce(m.Hashes)
	case mediation.Finish:
		s.reg.finish(h.self, []string{m.Hash})
	case mediation.FinishMany:
		s.reg.finish(h.self, m.Hashes)
	case mediation.Signal:
		return h.signal(m)
	case mediation.GetICEServers:
		return h.answerICE()
	default:
		return h.drop(dropUnexpected, false, fmt.Errorf("%s from a peer", m.Event()))
	}
	return true
}

func (h *conn) announce(hashes []string) bool {
	_, err := h.s.reg.announce(h.self, hashes, h.s.lim.maxHashesPerConn)
	if err == nil {
		return true
	}
	if errors.Is(err, errTooManyClientHashes) {
		h.s.metrics.limit(limitHashes)
	}
	return h.drop(dropTooManyHashes, false, err)
}

// getPeersMany answers each hash with its own peers event. The answers to a
// large batch carry fewer ids each, so that together they stay within a
// quarter of the connection's queue: a peer learns who seeds each hash, and
// asks get_peers about one to hear of more.
func (h *conn) getPeersMany(hashes []string) bool {
	s := h.s
	defer s.metrics.observeGetPeers(time.Now())
	max := s.lim.maxPeers
	if len(hashes) > 0 {
		const perID = mediation.IDLen + 3 // "id",
		budget := 2 * orDefault(s.MaxPayload, DefaultMaxPayload) / 4
		max = min(max, budget/(len(hashes)*perID)+1)
	}
	answers := s.reg.seedersMany(hashes, h.self.id, max)
	for i, ids := range answers {
		if len(ids) < max && s.Federation != nil {
			ids = appendRemote(ids, s.Federation.RemotePeers(hashes[i], max-len(ids)), h.self.id, max)
		}
		s.metrics.peersAnswers.Inc()
		if s.emit(h.c, mediation.Peers{Hash: hashes[i], IDs: ids}) != nil {
			return false
		}
	}
	return true
}

// signal passes a peer's signal to its receiver: a local peer, a remote peer
// whose link we know, or the federation.
func (h *conn) signal(m mediation.Signal) bool {
	s := h.s
	if len(m.PeerID) != mediation.IDLen {
		return h.drop(dropMalformed, true, errors.New("signal from a peer with a relay id"))
	}
	if m.PeerID == h.self.id {
		return h.drop(dropUnexpected, false, errors.New("signal to itself"))
	}
	if len(m.Data) > s.lim.maxSignalSize {
		s.metrics.signalDropped(signalDropSize)
		return true
	}
	if s.reg.lookup(m.PeerID) != nil {
		s.deliver(m.Hash, h.self.id, m.PeerID, m.Data)
		return true
	}
	if via := s.routes.lookup(m.PeerID, time.Now()); via != nil {
		// Back through the mediator the remote peer's signals came from.
		// Dropped rather than queued when the link is backed up: one peer's
		// flood must not cost the link, which carries others' signals too.
		err := via.c.TryEmit(mediation.EventSignal, m.Hash, h.self.id+m.PeerID, m.Data)
		switch {
		case err == nil:
			s.metrics.signalsRelayed.Inc()
			return true
		case errors.Is(err, socketio.ErrQueueFull):
			s.metrics.signalDropped(signalDropQueueFull)
			return true
		}
		// The link is closing: the federation may know another way.
	}
	if s.Federation != nil && s.Federation.RelaySignal(m.Hash, h.self.id, m.PeerID, m.Data) {
		s.metrics.signalsRelayed.Inc()
	} else {
		s.metrics.signalsUnroutable.Inc()
	}
	return true
}

func (h *conn) fromMediator(m mediation.Message) bool {
	s := h.s
	switch m := m.(type) {
	case mediation.GetPeers:
		// Local peers only: answering with remote ones could loop between
		// mediators.
		ids := s.reg.seeders(m.Hash, "", s.lim.maxPeers)
		s.metrics.peersAnswers.Inc()
		return s.emit(h.c, mediation.Peers{Hash: m.Hash, IDs: ids}) == nil
	case mediation.Signal:
		from, to, ok := mediation.SplitRelayID(m.PeerID)
		if !ok {
			return h.drop(dropMalformed, true, errors.New("signal from a mediator without a relay id"))
		}
		// A link speaks only for peers behind it: never for one connected
		// here (that would let anyone forge signals from our peers), nor
		// for one another link holds.
		if s.reg.lookup(from) != nil {
			return h.drop(dropSpoofedSender, true, fmt.Errorf("relayed signal claims sender %s, a peer connected here", from))
		}
		if err := s.routes.claim(from, h, time.Now()); err != nil {
			return h.drop(dropSpoofedSender, false, fmt.Errorf("relayed signal from %s: %w", from, err))
		}
		s.deliver(m.Hash, from, to, m.Data)
	default:
		return h.drop(dropUnexpected, false, fmt.Errorf("%s from a mediator", m.Event()))
	}
	return true
}

// appendRemote adds remote ids to local ones, skipping duplicates and the
// asker, up to max.
func appendRemote(ids, remote []string, self string, max int) []string {
	for _, r := range remote {
		if len(ids) >= max {
			break
		}
		if r == self || !mediation.ValidPeerID(r) {
			continue
		}
		dup := false
		for _, id := range ids {
			if id == r {
				dup = true
				break
			}
		}
		if !dup {
			ids = append(ids, r)
		}
	}
	return ids
}

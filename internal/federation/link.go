package federation

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// maxQueued bounds the events a link holds while it is still connecting.
const maxQueued = 64

// link is one REPLICATION connection we opened to another mediator: we ask it
// for peers and relay our peers' signals to its peers through it. Its run
// goroutine, owned by the Federation, dials, reads and removes the link when
// the connection ends; the Federation closes it when idle.
type link struct {
	f      *Federation
	addr   netip.AddrPort
	cancel context.CancelFunc

	mu       sync.Mutex
	conn     *socketio.Conn // nil until connected
	queue    []mediation.Message
	asked    map[string]time.Time // hash -> when we last sent get_peers
	peers    map[string][]string  // hash -> ids of its last answer
	lastUsed time.Time
}

func newLink(f *Federation, addr netip.AddrPort, cancel context.CancelFunc, now time.Time) *link {
	return &link{
		f:        f,
		addr:     addr,
		cancel:   cancel,
		asked:    make(map[string]time.Time),
		peers:    make(map[string][]string),
		lastUsed: now,
	}
}

// send emits m, or queues it while the link connects. It reports whether m
// was accepted.
func (l *link) send(m mediation.Message) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastUsed = time.Now()
	if l.conn == nil {
		if len(l.queue) >= maxQueued {
			return false
		}
		l.queue = append(l.queue, m)
		return true
	}
	return l.conn.Emit(m.Event(), m.Args()...) == nil
}

// ask sends get_peers for hash unless it was sent less than every ago.
func (l *link) ask(hash string, now time.Time, every time.Duration) {
	l.mu.Lock()
	last, ok := l.asked[hash]
	due := !ok || now.Sub(last) >= every
	if due {
		l.asked[hash] = now
	}
	l.mu.Unlock()
	if due {
		l.send(mediation.GetPeers{Hash: hash})
	}
}

// reask repeats get_peers for hash if this mediator was asked about it
// before (it announced hash) and the last question is older than every.
func (l *link) reask(hash string, now time.Time, every time.Duration) {
	l.mu.Lock()
	_, known := l.asked[hash]
	l.mu.Unlock()
	if known {
		l.ask(hash, now, every)
	}
}

// peersOf returns the ids of the last answer for hash.
func (l *link) peersOf(hash string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peers[hash]
}

// hasPeer reports whether id was in the last answer for hash.
func (l *link) hasPeer(hash, id string) bool {
	for _, p := range l.peersOf(hash) {
		if p == id {
			return true
		}
	}
	return false
}

// forget drops what the link knows about hash, once nobody asks for it.
func (l *link) forget(hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.asked, hash)
	delete(l.peers, hash)
}

func (l *link) idleSince() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastUsed
}

// run connects, hands shake as a mediator and reads until the connection or
// ctx ends. The Federation removes the link afterwards.
func (l *link) run(ctx context.Context) error {
	log := l.f.log.With("mediator_addr", l.addr.String())
	c, err := socketio.Dial(ctx, "http://"+l.addr.String(), &socketio.DialOptions{
		HandshakeTimeout: l.f.cfg.DialTimeout,
		Logger:           l.f.log,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	hs := mediation.Handshake{ID: l.f.cfg.MediatorID, Type: mediation.Replication}
	if err := c.Emit(hs.Event(), hs.Args()...); err != nil {
		return err
	}
	l.mu.Lock()
	l.conn = c
	queue := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, m := range queue {
		c.Emit(m.Event(), m.Args()...)
	}
	log.Debug("replication link open")
	for {
		ev, err := c.ReadEvent(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := l.handle(ev); err != nil {
			log.Info("dropped event from mediator", "err", err)
		}
	}
}

// handle applies one event from the remote mediator. Only peers and relayed
// signals mean something on a link; established is expected, anything else
// is ignored so newer mediators keep working.
func (l *link) handle(ev socketio.Event) error {
	m, err := mediation.Decode(ev.Name, ev.Args)
	if errors.Is(err, mediation.ErrUnknownEvent) {
		return nil
	}
	if err != nil {
		return err
	}
	switch m := m.(type) {
	case mediation.Peers:
		l.mu.Lock()
		defer l.mu.Unlock()
		// Answers to questions we did not ask would only grow memory.
		if _, ok := l.asked[m.Hash]; !ok {
			return nil
		}
		ids := make([]string, 0, len(m.IDs))
		for _, id := range m.IDs {
			if mediation.ValidPeerID(id) {
				ids = append(ids, id)
			}
		}
		l.peers[m.Hash] = ids
	case mediation.Signal:
		from, to, ok := mediation.SplitRelayID(m.PeerID)
		if !ok {
			return errors.New("signal from a mediator without a sender+receiver relay id")
		}
		l.mu.Lock()
		l.lastUsed = time.Now()
		l.mu.Unlock()
		l.f.learnRoute(from, l)
		if !l.f.cfg.Mediator.DeliverSignal(m.Hash, from, to, m.Data) {
			l.f.log.Debug("relayed signal for a peer that is not here", "hash", m.Hash, "to", to)
		}
	}
	return nil
}

// Package mediatorclient is the peer side of mediation: it connects to a
// mediator, hands shake as a peer, announces the hashes it seeds, asks for
// peers and exchanges WebRTC signals (PROTOCOL.md section 5).
//
// A Client keeps itself connected: when the connection drops it reconnects
// with backoff and jitter, hands shake again and re-announces every hash by
// itself. It also copes with the prototype's mediator: that one forgets every
// hash of a peer on finish, so after Finish the client re-announces the
// others; it stays silent on get_peers for unknown hashes, so FindPeers
// repeats the question.
//
// Incoming events are delivered on channels. A Subscription receives the
// events of one hash; Events receives those that no subscription took. The
// channels are buffered and never block the connection: when a consumer
// falls behind, further events for it are dropped (and counted by Dropped).
// Peers answers are repeated by asking again, and a lost signal makes that
// WebRTC attempt time out and be retried, so dropping is safe; blocking
// would stall every other hash on the connection.
//
// Outgoing events are paced by a token bucket (Options.EventRate) below the
// p2pcdn mediator's per-connection limit, so re-announcing thousands of
// hashes after a reconnect neither overflows the transport's send queue nor
// gets the connection closed.
package mediatorclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// Event is Peers or Signal.
type Event interface{ isEvent() }

// Peers is a mediator's answer to GetPeers, without this client's own id.
type Peers struct {
	Hash string
	IDs  []string
}

// Signal is WebRTC signalling data from peer From.
type Signal struct {
	Hash string
	From string
	Data string
}

func (Peers) isEvent()  {}
func (Signal) isEvent() {}

// Options configure a Client. The zero value works.
type Options struct {
	// PeerID is the client's id, 40 lowercase hex characters; random when
	// empty.
	PeerID string
	// Logger receives the client's logs; nil means slog.Default().
	Logger *slog.Logger
	// Backoff paces reconnects; the zero value is socket.io-client's (1 s
	// to 5 s, jitter 0.5).
	Backoff socketio.Backoff
	// EstablishTimeout bounds the wait for "established" after handshake.
	// Default 10 s.
	EstablishTimeout time.Duration
	// EventRate and EventBurst pace outgoing events. Default 50/s, burst 50.
	EventRate  rate.Limit
	EventBurst int
	// Buffer is the capacity of each event channel. Default 64.
	Buffer int
	// Header is sent with the connection's HTTP requests.
	Header http.Header
	// MaxPayload caps one incoming Socket.IO packet; 0 means the
	// transport's default.
	MaxPayload int
}

// ErrNotConnected is returned by calls that need the mediator while the
// client is reconnecting.
var ErrNotConnected = errors.New("not connected to the mediator (reconnecting)")

// ErrClientClosed is returned by calls on a closed Client.
var ErrClientClosed = errors.New("mediator client is closed")

// Client is a connection to one mediator. Its methods are safe for
// concurrent use.
type Client struct {
	url     string
	opt     Options
	id      string
	log     *slog.Logger
	lim     *rate.Limiter
	backoff socketio.Backoff

	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the background loop has returned

	dropped    atomic.Int64
	reconnects atomic.Int64

	mu         sync.Mutex
	conn       *socketio.Conn      // nil while reconnecting
	reannounce chan struct{}       // pokes the current connection's announcer
	hashes     map[string]struct{} // what we seed, re-announced after reconnects
	subs       map[string][]*Subscription
	events     chan Event
	closed     bool
	closeOnce  sync.Once
}

// Dial connects to the mediator at url (ws://, http:// or host:port), hands
// shake as a peer and waits for "established". ctx bounds this first
// connection only; afterwards the Client keeps itself connected in the
// background until Close.
func Dial(ctx context.Context, url string, opt Options) (*Client, error) {
	id := opt.PeerID
	if id == "" {
		var b [20]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	} else if !mediation.ValidPeerID(id) {
		return nil, fmt.Errorf("mediator client: peer id %q: want 40 lowercase hex characters", id)
	}
	c := &Client{
		url:     url,
		opt:     opt,
		id:      id,
		log:     opt.Logger,
		lim:     rate.NewLimiter(orDefault(opt.EventRate, 50), orDefault(opt.EventBurst, 50)),
		backoff: opt.Backoff,
		done:    make(chan struct{}),
		hashes:  make(map[string]struct{}),
		subs:    make(map[string][]*Subscription),
		events:  make(chan Event, orDefault(opt.Buffer, 64)),
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("mediator", url, "peer", id)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	conn, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	// Attach before returning so calls right after Dial find the connection.
	poke := c.attach(conn)
	go c.loop(conn, poke)
	return c, nil
}

func orDefault[T int | time.Duration | rate.Limit](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// PeerID returns the client's peer id.
func (c *Client) PeerID() string { return c.id }

// Dropped returns how many incoming events were dropped because their
// channel was full.
func (c *Client) Dropped() int64 { return c.dropped.Load() }

// Reconnects returns how many times the client has reconnected.
func (c *Client) Reconnects() int64 { return c.reconnects.Load() }

// connect dials, hands shake and waits for established. Events arriving
// before established are delivered as usual.
func (c *Client) connect(ctx context.Context) (*socketio.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, orDefault(c.opt.EstablishTimeout, 10*time.Second))
	defer cancel()
	conn, err := socketio.Dial(ctx, c.url, &socketio.DialOptions{
		Header:     c.opt.Header,
		MaxPayload: c.opt.MaxPayload,
		Logger:     c.log,
	})
	if err != nil {
		return nil, fmt.Errorf("mediator client: cannot connect to %s: %w", c.url, err)
	}
	hs := mediation.Handshake{ID: c.id, Type: mediation.Mediation}
	if err := conn.Emit(hs.Event(), hs.Args()...); err != nil {
		conn.Close()
		return nil, fmt.Errorf("mediator client: sending handshake to %s: %w", c.url, err)
	}
	for {
		ev, err := conn.ReadEvent(ctx)
		if err != nil {
			conn.Close()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("mediator client: %s did not accept the handshake in time: %w", c.url, ctx.Err())
			}
			return nil, fmt.Errorf("mediator client: %s closed the connection during the handshake "+
				"(is peer id %s connected already?): %w", c.url, c.id, err)
		}
		if ev.Name == mediation.EventEstablished {
			return conn, nil
		}
		c.dispatch(ev)
	}
}

// loop owns the connection: it reads until the connection fails, then
// reconnects with backoff, until Close.
func (c *Client) loop(conn *socketio.Conn, poke chan struct{}) {
	defer close(c.done)
	for {
		c.session(conn, poke)
		if c.ctx.Err() != nil {
			return
		}
		c.log.Warn("lost connection to the mediator, reconnecting")
		conn = c.reconnect()
		if conn == nil {
			return
		}
		c.reconnects.Add(1)
		c.log.Info("reconnected to the mediator")
		poke = c.attach(conn)
	}
}

func (c *Client) reconnect() *socketio.Conn {
	for {
		d := c.backoff.Next()
		t := time.NewTimer(d)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		conn, err := c.connect(c.ctx)
		if err == nil {
			c.backoff.Reset()
			return conn
		}
		if c.ctx.Err() != nil {
			return nil
		}
		c.log.Info("reconnect failed", "err", err)
	}
}

// attach makes conn the live connection. The returned channel pokes its
// announcer, which starts by announcing everything we seed.
func (c *Client) attach(conn *socketio.Conn) chan struct{} {
	poke := make(chan struct{}, 1)
	poke <- struct{}{}
	c.mu.Lock()
	c.conn = conn
	c.reannounce = poke
	c.mu.Unlock()
	return poke
}

// session serves one established connection until it fails or the client
// closes. A second goroutine, owned here, (re-)announces every hash.
func (c *Client) session(conn *socketio.Conn, poke chan struct{}) {
	sctx, cancel := context.WithCancel(c.ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.announcer(sctx, conn, poke) })
	for {
		ev, err := conn.ReadEvent(sctx)
		if err != nil {
			break
		}
		c.dispatch(ev)
	}
	cancel()
	conn.Close()
	wg.Wait()
	c.mu.Lock()
	c.conn = nil
	c.reannounce = nil
	c.mu.Unlock()
}

// announcer announces every hash we seed each time it is poked: once per
// connection and after every Finish (the prototype's mediator forgets all
// our hashes on finish).
func (c *Client) announcer(ctx context.Context, conn *socketio.Conn, poke <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-poke:
		}
		c.mu.Lock()
		hashes := make([]string, 0, len(c.hashes))
		for h := range c.hashes {
			hashes = append(hashes, h)
		}
		c.mu.Unlock()
		for _, h := range hashes {
			c.mu.Lock()
			_, still := c.hashes[h]
			c.mu.Unlock()
			if !still {
				continue
			}
			if err := c.send(ctx, conn, mediation.Announce{Hash: h}); err != nil {
				return // the session notices the closed connection
			}
		}
	}
}

// send paces and emits one event.
func (c *Client) send(ctx context.Context, conn *socketio.Conn, m mediation.Message) error {
	if err := c.lim.Wait(ctx); err != nil {
		return err
	}
	if err := conn.Emit(m.Event(), m.Args()...); err != nil {
		if errors.Is(err, socketio.ErrClosed) {
			return ErrNotConnected // the loop is about to reconnect
		}
		return fmt.Errorf("sending %s to the mediator: %w", m.Event(), err)
	}
	return nil
}

// current returns the live connection, or an error saying why there is none.
func (c *Client) current() (*socketio.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, ErrClientClosed
	case c.conn == nil:
		return nil, ErrNotConnected
	}
	return c.conn, nil
}

func checkHash(hash string) error {
	if !mediation.ValidHash(hash) {
		return fmt.Errorf("mediator client: hash %q: want 40 lowercase hex characters", hash)
	}
	return nil
}

// Announce says this client seeds hash, now and after every reconnect. When
// the client is reconnecting, the hash is announced once it is back.
func (c *Client) Announce(ctx context.Context, hash string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClientClosed
	}
	c.hashes[hash] = struct{}{}
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return nil // the next connection's announcer sends it
	}
	if err := c.send(ctx, conn, mediation.Announce{Hash: hash}); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("mediator client: announce %s: %w", hash, err)
		}
		return nil // connection lost; the next one announces it
	}
	return nil
}

// Finish says this client stops seeding hash. The other hashes are announced
// again, because the prototype's mediator forgets them all on finish.
func (c *Client) Finish(ctx context.Context, hash string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClientClosed
	}
	delete(c.hashes, hash)
	conn, poke, others := c.conn, c.reannounce, len(c.hashes)
	c.mu.Unlock()
	if conn == nil {
		return nil // a new connection starts without the hash anyway
	}
	if err := c.send(ctx, conn, mediation.Finish{Hash: hash}); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("mediator client: finish %s: %w", hash, err)
		}
		return nil
	}
	if others > 0 {
		select {
		case poke <- struct{}{}:
		default: // a re-announce is pending already
		}
	}
	return nil
}

// GetPeers asks who seeds hash. The answer arrives as a Peers event; the
// prototype's mediator does not answer for hashes it does not know, so ask
// again (or use FindPeers).
func (c *Client) GetPeers(ctx context.Context, hash string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	conn, err := c.current()
	if err != nil {
		return fmt.Errorf("mediator client: get_peers %s: %w", hash, err)
	}
	if err := c.send(ctx, conn, mediation.GetPeers{Hash: hash}); err != nil {
		return fmt.Errorf("mediator client: get_peers %s: %w", hash, err)
	}
	return nil
}

// Signal sends WebRTC signalling data to peer peerID about hash.
func (c *Client) Signal(ctx context.Context, hash, peerID, data string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	if !mediation.ValidPeerID(peerID) {
		return fmt.Errorf("mediator client: peer id %q: want 40 lowercase hex characters", peerID)
	}
	if data == "" || len(data) > mediation.MaxSignalData {
		return fmt.Errorf("mediator client: signal data of %d bytes: want 1 to %d", len(data), mediation.MaxSignalData)
	}
	conn, err := c.current()
	if err != nil {
		return fmt.Errorf("mediator client: signal to %s: %w", peerID, err)
	}
	if err := c.send(ctx, conn, mediation.Signal{Hash: hash, PeerID: peerID, Data: data}); err != nil {
		return fmt.Errorf("mediator client: signal to %s: %w", peerID, err)
	}
	return nil
}

// FindPeers asks for the seeders of hash every interval (1 s if zero) until
// an answer names at least one, and returns their ids.
func (c *Client) FindPeers(ctx context.Context, hash string, interval time.Duration) ([]string, error) {
	if err := checkHash(hash); err != nil {
		return nil, err
	}
	sub := c.subscribe(hash, true)
	defer sub.Close()
	t := time.NewTicker(orDefault(interval, time.Second))
	defer t.Stop()
	for {
		err := c.GetPeers(ctx, hash)
		if errors.Is(err, ErrClientClosed) {
			return nil, err
		}
		// ErrNotConnected: keep trying, the client is reconnecting.
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("mediator client: no peers found for %s: %w", hash, ctx.Err())
			case ev, ok := <-sub.C:
				if !ok {
					return nil, ErrClientClosed
				}
				if p, ok := ev.(Peers); ok && len(p.IDs) > 0 {
					return p.IDs, nil
				}
			case <-t.C:
				break wait
			}
		}
	}
}

// Events returns the channel of events no subscription took. It is closed by
// Close.
func (c *Client) Events() <-chan Event { return c.events }

// Subscription receives the events of one hash.
type Subscription struct {
	// C carries the events. It is closed by Close or by the Client's Close.
	C <-chan Event

	c         *Client
	hash      string
	ch        chan Event
	peersOnly bool
}

// Subscribe returns a subscription to the events of hash. Several
// subscriptions to one hash each get every event.
func (c *Client) Subscribe(hash string) *Subscription { return c.subscribe(hash, false) }

func (c *Client) subscribe(hash string, peersOnly bool) *Subscription {
	ch := make(chan Event, orDefault(c.opt.Buffer, 64))
	s := &Subscription{C: ch, c: c, hash: hash, ch: ch, peersOnly: peersOnly}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		close(ch)
		return s
	}
	c.subs[hash] = append(c.subs[hash], s)
	return s
}

// Close ends the subscription and closes C.
func (s *Subscription) Close() {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.subs[s.hash]
	for i, x := range list {
		if x == s {
			list = append(list[:i:i], list[i+1:]...)
			if len(list) == 0 {
				delete(c.subs, s.hash)
			} else {
				c.subs[s.hash] = list
			}
			close(s.ch)
			return
		}
	}
}

// dispatch decodes one incoming event and delivers it without blocking.
func (c *Client) dispatch(ev socketio.Event) {
	m, err := mediation.Decode(ev.Name, ev.Args)
	if err != nil {
		c.log.Debug("ignoring event from the mediator", "err", err)
		return
	}
	var out Event
	var hash string
	switch m := m.(type) {
	case mediation.Peers:
		ids := m.IDs[:0:0]
		for _, id := range m.IDs {
			if id != c.id {
				ids = append(ids, id)
			}
		}
		out, hash = Peers{Hash: m.Hash, IDs: ids}, m.Hash
	case mediation.Signal:
		if len(m.PeerID) != mediation.IDLen {
			c.log.Debug("ignoring signal with a relay id from the mediator")
			return
		}
		out, hash = Signal{Hash: m.Hash, From: m.PeerID, Data: m.Data}, m.Hash
	default:
		return // a repeated established, or events meant for mediators
	}
	_, isPeers := out.(Peers)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	taken := false
	for _, s := range c.subs[hash] {
		if s.peersOnly && !isPeers {
			continue
		}
		taken = true
		c.deliver(s.ch, out)
	}
	if !taken {
		c.deliver(c.events, out)
	}
}

func (c *Client) deliver(ch chan Event, ev Event) {
	select {
	case ch <- ev:
	default:
		if c.dropped.Add(1) == 1 {
			c.log.Warn("event consumer too slow, dropping events")
		}
	}
}

// Close disconnects, stops the background loop and closes every event
// channel.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.mu.Lock()
		conn := c.conn
		c.mu.Unlock()
		if conn != nil {
			conn.Close()
		}
		<-c.done
		c.mu.Lock()
		c.closed = true
		close(c.events)
		for h, list := range c.subs {
			for _, s := range list {
				close(s.ch)
			}
			delete(c.subs, h)
		}
		c.mu.Unlock()
	})
	return nil
}

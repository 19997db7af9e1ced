// Package mediatorclient is the peer side of mediation: it connects to a
// mediator, hands shake as a peer, announces the hashes it seeds, asks for
// peers and exchanges WebRTC signals (PROTOCOL.md section 5), and uses the
// extensions of docs/extensions.md toward mediators of ours.
//
// A Client keeps itself connected: when the connection drops it reconnects
// with backoff and jitter, hands shake again and re-announces every hash by
// itself. A mediator that refuses the handshake (another connection holds
// our peer id, as a squatter may after a mediator restart) gets a fresh id
// at once. The client also copes with the prototype's mediator: that one
// forgets every hash of a peer on finish, so after Finish the client
// re-announces the others; it stays silent on get_peers for unknown hashes,
// so FindPeers repeats the question.
//
// A mediator of ours says what it speaks in its "established" (capabilities):
// toward one that takes batch events the client announces, finishes and asks
// about many hashes per event; it hands out STUN/TURN servers, which
// ICEServers returns and the client refreshes before their credentials
// expire. Toward any other mediator the client speaks the prototype's
// contract alone, one hash per event.
//
// Incoming events are delivered on channels. A Subscription receives the
// events of one hash; Events receives those that no subscription took. The
// channels are buffered and never block the connection: when a consumer
// falls behind, further events for it are dropped (and counted by Dropped).
// Peers answers are repeated by asking again, and a lost signal makes that
// WebRTC attempt time out and be retried, so dropping is safe; blocking
// would stall every other hash on the connection.
//
// Outgoing events are paced by token buckets below the p2pcdn mediator's
// per-connection limits (events per second, and hashes per second for batch
// events), so re-announcing thousands of hashes after a reconnect neither
// overflows the transport's send queue nor gets the connection closed.
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
	"github.com/p2pcdn/p2pcdn/internal/timeline"
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
	// PeerID is the client's first id, 40 lowercase hex characters; random
	// when empty. If a mediator refuses it, the client takes a fresh one.
	PeerID string
	// Logger receives the client's logs; nil means slog.Default().
	Logger *slog.Logger
	// Backoff paces reconnects; the zero value is socket.io-client's (1 s
	// to 5 s, jitter 0.5).
	Backoff socketio.Backoff
	// Retry makes Dial keep trying, with Backoff, while the mediator cannot
	// be reached (a server booting with its mediator), until its ctx ends.
	// Each failure is logged. A malformed URL fails at once regardless.
	Retry bool
	// EstablishTimeout bounds the wait for "established" after handshake.
	// Default 10 s.
	EstablishTimeout time.Duration
	// EventRate and EventBurst pace outgoing events. Default 50/s, burst 50.
	EventRate  rate.Limit
	EventBurst int
	// HashRate paces the hashes events name, one for announce, a batch's
	// length for announce_many (our mediator counts hashes, not only
	// events). Default DefaultHashRate.
	HashRate rate.Limit
	// Buffer is the capacity of each event channel. Default 64.
	Buffer int
	// Header is sent with the connection's HTTP requests.
	Header http.Header
	// MaxPayload caps one incoming Socket.IO packet; 0 means the
	// transport's default.
	MaxPayload int
	// GetPeers are hashes to ask for as soon as Dial connects: in the same
	// flight as the handshake toward a mediator of ours (a round trip
	// saved), right after "established" toward others. Their first peers
	// answers are kept for the first Subscribe of each hash, so a caller
	// that subscribes after Dial returns still gets them.
	GetPeers []string
}

// maxPipelined bounds the Options.GetPeers hashes asked in the flight of the
// handshake (one get_peers each: batch events need the mediator's
// established); the others are asked after it.
const maxPipelined = 16

// Defaults of the batch extension.
const (
	// DefaultHashRate is how many hashes a second batch events carry at
	// most, our mediator's default limit (--hash-rate): after a burst of
	// one second's worth, 100,000 seeded files are announced in 9 s.
	DefaultHashRate = 10_000
	// MaxBatch bounds the hashes we put in one batch event whatever the
	// mediator allows: 1,000 hashes make a 43 KB event.
	MaxBatch = 1000
	// maxQuickRefusals is how many refused handshakes in a row are retried
	// at once with a fresh id before backing off.
	maxQuickRefusals = 3
)

// ErrNotConnected is returned by calls that need the mediator while the
// client is reconnecting.
var ErrNotConnected = errors.New("not connected to the mediator (reconnecting)")

// ErrClientClosed is returned by calls on a closed Client.
var ErrClientClosed = errors.New("mediator client is closed")

// errRefused: the mediator closed the connection after our handshake
// without "established". Ours does that when another connection holds the
// peer id (id_taken).
var errRefused = errors.New("the mediator closed the connection during the handshake (peer id in use?)")

// Client is a connection to one mediator. Its methods are safe for
// concurrent use.
type Client struct {
	url     string
	opt     Options
	log     *slog.Logger
	lim     *rate.Limiter // events
	hashLim *rate.Limiter // hashes of batch events
	backoff socketio.Backoff

	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the background loop has returned

	dropped    atomic.Int64
	reconnects atomic.Int64

	mu         sync.Mutex
	id         string
	conn       *socketio.Conn      // nil while reconnecting
	caps       *caps               // the current connection's; nil: prototype contract only
	ice        iceState            // servers from the latest established or ice_servers
	iceAnswer  chan struct{}       // pokes the ICE refresher when fresh servers came
	reannounce chan []string       // hands the current connection's announcer what to (re-)announce
	hashes     map[string]struct{} // what we seed, re-announced after reconnects
	subs       map[string][]*Subscription
	early      map[string]bool  // Options.GetPeers whose answers are kept until subscribed
	retained   map[string]Peers // those answers, by hash
	events     chan Event
	closed     bool
	closeOnce  sync.Once
}

// Dial connects to the mediator at url (ws://, http:// or host:port), hands
// shake as a peer and waits for "established". ctx bounds this first
// connection only (with Options.Retry, all attempts at it); afterwards the
// Client keeps itself connected in the background until Close.
func Dial(ctx context.Context, url string, opt Options) (*Client, error) {
	id := opt.PeerID
	if id == "" {
		id = newID()
	} else if !mediation.ValidPeerID(id) {
		return nil, fmt.Errorf("mediator client: peer id %q: want 40 lowercase hex characters", id)
	}
	if err := socketio.CheckURL(url); err != nil {
		return nil, err
	}
	if err := checkHashes(opt.GetPeers); err != nil {
		return nil, err
	}
	c := &Client{
		url:      url,
		opt:      opt,
		id:       id,
		log:      opt.Logger,
		lim:      rate.NewLimiter(orDefault(opt.EventRate, 50), orDefault(opt.EventBurst, 50)),
		hashLim:  newHashLimiter(orDefault(opt.HashRate, DefaultHashRate)),
		backoff:  opt.Backoff,
		done:     make(chan struct{}),
		hashes:   make(map[string]struct{}),
		subs:     make(map[string][]*Subscription),
		events:   make(chan Event, orDefault(opt.Buffer, 64)),
		early:    make(map[string]bool),
		retained: make(map[string]Peers),
	}
	for _, h := range opt.GetPeers {
		c.early[h] = true
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("mediator", url)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	conn, cp, err := c.dialFirst(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	// Attach before returning so calls right after Dial find the connection.
	poke := c.attach(conn, cp)
	go c.loop(conn, poke)
	return c, nil
}

// dialFirst makes the first connection: a refused id is replaced at once;
// with Options.Retry an unreachable mediator is tried again with backoff.
func (c *Client) dialFirst(ctx context.Context) (*socketio.Conn, *caps, error) {
	refusals := 0
	for {
		conn, cp, err := c.connect(ctx, c.opt.GetPeers)
		if err == nil {
			c.backoff.Reset()
			return conn, cp, nil
		}
		if errors.Is(err, errRefused) {
			refusals++
			if refusals <= maxQuickRefusals {
				continue // connect took a fresh id already
			}
		}
		if !c.opt.Retry || ctx.Err() != nil {
			return nil, nil, err
		}
		d := c.backoff.Next()
		c.log.Warn("mediator not reachable yet, retrying", "in", d.Round(time.Millisecond), "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// newHashLimiter bursts one second's worth (the mediator's bucket holds at
// least that much) and never less than a full batch, which WaitN needs.
func newHashLimiter(r rate.Limit) *rate.Limiter {
	return rate.NewLimiter(r, max(MaxBatch, int(r)))
}

func newID() string {
	var b [20]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func orDefault[T int | time.Duration | rate.Limit](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// PeerID returns the client's current peer id. It changes when a mediator
// refuses the id (another connection holds it).
func (c *Client) PeerID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// Dropped returns how many incoming events were dropped because their
// channel was full.
func (c *Client) Dropped() int64 { return c.dropped.Load() }

// Reconnects returns how many times the client has reconnected.
func (c *Client) Reconnects() int64 { return c.reconnects.Load() }

// connect dials, hands shake, waits for established and asks for the peers
// of getPeers. Toward a mediator of ours the handshake and the first
// get_peers go out in the flight of the namespace connect. Events arriving
// before established are delivered as usual. When the mediator closes the
// connection instead of answering, the client takes a fresh peer id for the
// next attempt and the error wraps errRefused.
func (c *Client) connect(ctx context.Context, getPeers []string) (*socketio.Conn, *caps, error) {
	ctx, cancel := context.WithTimeout(ctx, orDefault(c.opt.EstablishTimeout, 10*time.Second))
	defer cancel()
	id := c.PeerID()
	hs := mediation.Handshake{ID: id, Type: mediation.Mediation}
	early := []socketio.OutEvent{{Name: hs.Event(), Args: hs.Args()}}
	for _, h := range getPeers[:min(len(getPeers), maxPipelined)] {
		early = append(early, socketio.OutEvent{Name: mediation.EventGetPeers, Args: []any{h}})
	}
	conn, err := socketio.Dial(ctx, c.url, &socketio.DialOptions{
		Pipeline:   early,
		Header:     c.opt.Header,
		MaxPayload: c.opt.MaxPayload,
		// A get_peers_many is answered with one peers event per hash, all
		// at once: room for a few batches' worth (bytes stay bounded by the
		// transport).
		MaxPending: 4 * MaxBatch,
		Logger:     c.log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("cannot connect to the mediator at %s: %w", c.url, err)
	}
	pipelined := conn.Pipelined()
	if !pipelined {
		if err := conn.Emit(hs.Event(), hs.Args()...); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("sending the handshake to %s: %w", c.url, err)
		}
		timeline.Mark(ctx, "mediator: handshake sent")
	}
	for {
		ev, err := conn.ReadEvent(ctx)
		if err != nil {
			conn.Close()
			if ctx.Err() != nil {
				return nil, nil, fmt.Errorf("the mediator at %s did not accept the handshake in time: %w", c.url, ctx.Err())
			}
			fresh := c.replaceID(id)
			c.log.Warn("the mediator refused our handshake (is another connection using our peer id?); retrying with a fresh id",
				"old", id, "new", fresh)
			return nil, nil, fmt.Errorf("%s: %w", c.url, errRefused)
		}
		if ev.Name == mediation.EventEstablished {
			timeline.Mark(ctx, "mediator: established")
			cp := parseCaps(ev.Args, c.log)
			if pipelined {
				getPeers = getPeers[min(len(getPeers), maxPipelined):]
			}
			if len(getPeers) > 0 {
				// Taken from the limits' buckets too, but never waiting: the
				// connection is not live for other callers yet.
				if err := c.sendHashes(ctx, conn, cp, getPeersEvents, getPeers, nil); err != nil {
					conn.Close()
					return nil, nil, fmt.Errorf("asking %s for peers: %w", c.url, err)
				}
				timeline.Mark(ctx, "mediator: get_peers sent")
			}
			return conn, cp, nil
		}
		c.dispatch(ev)
	}
}

// replaceID swaps the peer id old for a fresh random one (unless it changed
// meanwhile) and returns the id now in use.
func (c *Client) replaceID(old string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id == old {
		c.id = newID()
	}
	return c.id
}

// loop owns the connection: it reads until the connection fails, then
// reconnects with backoff, until Close.
func (c *Client) loop(conn *socketio.Conn, poke chan []string) {
	defer close(c.done)
	for {
		c.session(conn, poke)
		if c.ctx.Err() != nil {
			return
		}
		c.log.Warn("lost connection to the mediator, reconnecting")
		var cp *caps
		conn, cp = c.reconnect()
		if conn == nil {
			return
		}
		c.reconnects.Add(1)
		// The same level as "reconnecting", so whoever saw that sees this.
		c.log.Warn("reconnected to the mediator", "peer", c.PeerID())
		poke = c.attach(conn, cp)
	}
}

// reconnect connects again after backoff; a refused id is replaced and
// retried at once a few times before backing off again.
func (c *Client) reconnect() (*socketio.Conn, *caps) {
	refusals := 0
	for {
		if refusals == 0 || refusals > maxQuickRefusals {
			d := c.backoff.Next()
			t := time.NewTimer(d)
			select {
			case <-c.ctx.Done():
				t.Stop()
				return nil, nil
			case <-t.C:
			}
		}
		conn, cp, err := c.connect(c.ctx, nil)
		if err == nil {
			c.backoff.Reset()
			return conn, cp
		}
		if c.ctx.Err() != nil {
			return nil, nil
		}
		if errors.Is(err, errRefused) {
			refusals++
		} else {
			refusals = 0
		}
		c.log.Info("reconnect failed", "err", err)
	}
}

// attach makes conn the live connection. The returned channel feeds its
// announcer, which starts with everything we seed at this moment; hashes
// announced later are sent by their Announce call.
func (c *Client) attach(conn *socketio.Conn, cp *caps) chan []string {
	poke := make(chan []string, 1)
	c.mu.Lock()
	poke <- c.seededLocked()
	c.conn = conn
	c.caps = cp
	c.reannounce = poke
	c.iceAnswer = make(chan struct{}, 1)
	if cp != nil {
		c.ice = iceState{servers: cp.ice, expires: cp.iceExpires, received: time.Now()}
	} else {
		c.ice = iceState{}
	}
	c.mu.Unlock()
	if cp != nil {
		c.log.Debug("mediator capabilities", "level", cp.level, "batch", cp.batch, "ice_servers", len(cp.ice))
	}
	return poke
}

// seededLocked lists the hashes we seed.
func (c *Client) seededLocked() []string {
	hashes := make([]string, 0, len(c.hashes))
	for h := range c.hashes {
		hashes = append(hashes, h)
	}
	return hashes
}

// session serves one established connection until it fails or the client
// closes. Goroutines owned here (re-)announce every hash and keep the ICE
// servers fresh.
func (c *Client) session(conn *socketio.Conn, poke chan []string) {
	sctx, cancel := context.WithCancel(c.ctx)
	c.mu.Lock()
	cp, iceAnswer := c.caps, c.iceAnswer
	c.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { c.announcer(sctx, conn, cp, poke) })
	if cp != nil {
		wg.Go(func() { c.iceRefresher(sctx, conn, iceAnswer) })
	}
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
	c.caps = nil
	c.reannounce = nil
	c.mu.Unlock()
}

// announcer announces the hashes it is handed: everything we seed once per
// connection (in batches where the mediator takes them) and, toward a
// prototype mediator, again after every Finish (it forgets all our hashes
// on finish).
func (c *Client) announcer(ctx context.Context, conn *socketio.Conn, cp *caps, poke <-chan []string) {
	for {
		var hashes []string
		select {
		case <-ctx.Done():
			return
		case hashes = <-poke:
		}
		// Drop the ones finished meanwhile, just before each event.
		still := func(h string) bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			_, ok := c.hashes[h]
			return ok
		}
		if err := c.sendHashes(ctx, conn, cp, announceEvents, hashes, still); err != nil {
			return // the session notices the closed connection
		}
	}
}

// hashEvents names the one-hash event of the prototype and its batch form.
type hashEvents struct{ single, many string }

// The events of the prototype and of the batch extension (docs/extensions.md).
var (
	announceEvents = hashEvents{mediation.EventAnnounce, mediation.EventAnnounceMany}
	finishEvents   = hashEvents{mediation.EventFinish, mediation.EventFinishMany}
	getPeersEvents = hashEvents{mediation.EventGetPeers, mediation.EventGetPeersMany}
)

// sendHashes sends hashes with the event pair ev: in batch events of at
// most the mediator's batch size where cp allows them, else one event per
// hash, paced. keep, if set, filters each hash just before it is sent.
func (c *Client) sendHashes(ctx context.Context, conn *socketio.Conn, cp *caps, ev hashEvents, hashes []string, keep func(string) bool) error {
	if cp == nil || cp.batch < 1 {
		for _, h := range hashes {
			if keep != nil && !keep(h) {
				continue
			}
			if err := c.emit(ctx, conn, 1, ev.single, h); err != nil {
				return err
			}
		}
		return nil
	}
	size := min(cp.batch, MaxBatch)
	batch := make([]string, 0, min(size, len(hashes)))
	for len(hashes) > 0 {
		batch = batch[:0]
		for len(hashes) > 0 && len(batch) < size {
			h := hashes[0]
			hashes = hashes[1:]
			if keep == nil || keep(h) {
				batch = append(batch, h)
			}
		}
		if len(batch) == 0 {
			continue
		}
		if err := c.emit(ctx, conn, len(batch), ev.many, batch); err != nil {
			return err
		}
	}
	return nil
}

// emit paces and sends one event; n is the number of hashes it names (our
// mediator limits those per second too; 0 for signals and the like).
func (c *Client) emit(ctx context.Context, conn *socketio.Conn, n int, name string, args ...any) error {
	if err := c.lim.Wait(ctx); err != nil {
		return err
	}
	if n > 0 {
		if err := c.hashLim.WaitN(ctx, n); err != nil {
			return err
		}
	}
	if err := conn.Emit(name, args...); err != nil {
		if errors.Is(err, socketio.ErrClosed) {
			return ErrNotConnected // the loop is about to reconnect
		}
		return fmt.Errorf("sending %s to the mediator: %w", name, err)
	}
	return nil
}

// send paces and emits one message of the prototype's contract.
func (c *Client) send(ctx context.Context, conn *socketio.Conn, m mediation.Message) error {
	return c.emit(ctx, conn, 0, m.Event(), m.Args()...)
}

// current returns the live connection and its capabilities, or an error
// saying why there is none.
func (c *Client) current() (*socketio.Conn, *caps, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, nil, ErrClientClosed
	case c.conn == nil:
		return nil, nil, ErrNotConnected
	}
	return c.conn, c.caps, nil
}

func checkHash(hash string) error {
	if !mediation.ValidHash(hash) {
		return fmt.Errorf("mediator client: hash %q: want 40 lowercase hex characters", hash)
	}
	return nil
}

func checkHashes(hashes []string) error {
	for _, h := range hashes {
		if err := checkHash(h); err != nil {
			return err
		}
	}
	return nil
}

// Announce says this client seeds hash, now and after every reconnect. When
// the client is reconnecting, the hash is announced once it is back.
func (c *Client) Announce(ctx context.Context, hash string) error {
	return c.AnnounceMany(ctx, []string{hash})
}

// AnnounceMany announces several hashes, in batch events where the mediator
// takes them, and returns once they are sent (or kept for the next
// connection while reconnecting).
func (c *Client) AnnounceMany(ctx context.Context, hashes []string) error {
	if err := checkHashes(hashes); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClientClosed
	}
	for _, h := range hashes {
		c.hashes[h] = struct{}{}
	}
	conn, cp := c.conn, c.caps
	c.mu.Unlock()
	if conn == nil {
		return nil // the next connection's announcer sends them
	}
	if err := c.sendHashes(ctx, conn, cp, announceEvents, hashes, nil); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("mediator client: announce: %w", err)
		}
		return nil // connection lost; the next one announces them
	}
	return nil
}

// Finish says this client stops seeding hash. Toward a prototype mediator
// the other hashes are announced again, because it forgets them all on
// finish.
func (c *Client) Finish(ctx context.Context, hash string) error {
	return c.FinishMany(ctx, []string{hash})
}

// FinishMany finishes several hashes, in batch events where the mediator
// takes them.
func (c *Client) FinishMany(ctx context.Context, hashes []string) error {
	if err := checkHashes(hashes); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClientClosed
	}
	for _, h := range hashes {
		delete(c.hashes, h)
	}
	conn, cp := c.conn, c.caps
	c.mu.Unlock()
	if conn == nil || len(hashes) == 0 {
		return nil // a new connection starts without the hashes anyway
	}
	if err := c.sendHashes(ctx, conn, cp, finishEvents, hashes, nil); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("mediator client: finish: %w", err)
		}
		return nil
	}
	if cp == nil {
		c.mu.Lock()
		if c.conn == conn && len(c.hashes) > 0 {
			// Replace a pending list: this one is newer and complete.
			select {
			case <-c.reannounce:
			default:
			}
			c.reannounce <- c.seededLocked()
		}
		c.mu.Unlock()
	}
	return nil
}

// GetPeers asks who seeds hash. The answer arrives as a Peers event; the
// prototype's mediator does not answer for hashes it does not know, so ask
// again (or use FindPeers).
func (c *Client) GetPeers(ctx context.Context, hash string) error {
	return c.GetPeersMany(ctx, []string{hash})
}

// GetPeersMany asks who seeds each of hashes, in batch events where the
// mediator takes them; each answer arrives as its own Peers event.
func (c *Client) GetPeersMany(ctx context.Context, hashes []string) error {
	if err := checkHashes(hashes); err != nil {
		return err
	}
	conn, cp, err := c.current()
	if err != nil {
		return fmt.Errorf("mediator client: get_peers: %w", err)
	}
	if err := c.sendHashes(ctx, conn, cp, getPeersEvents, hashes, nil); err != nil {
		return fmt.Errorf("mediator client: get_peers: %w", err)
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
	conn, _, err := c.current()
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
	if c.early[hash] {
		delete(c.early, hash)
		if p, ok := c.retained[hash]; ok {
			delete(c.retained, hash)
			c.deliver(ch, p)
		}
	}
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
		self := c.PeerID()
		ids := m.IDs[:0:0]
		for _, id := range m.IDs {
			if id != self {
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
	case mediation.ICEServers:
		c.onICEServers(m)
		return
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
		if p, ok := out.(Peers); ok && c.early[hash] {
			c.retained[hash] = p // for the first Subscribe
		}
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

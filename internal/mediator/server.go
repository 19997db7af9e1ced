// Package mediator is the p2pcdn mediator: a Socket.IO signalling server that
// tells peers who seeds a file and passes WebRTC offers and answers between
// them (PROTOCOL.md sections 4 and 5).
//
// Rules this server applies, beyond the wire contract:
//
//   - get_peers is always answered, with an empty list when nobody seeds the
//     hash. The asker is never in its own answer. An answer holds at most
//     MaxPeersPerAnswer ids; when a hash has more seeders, successive answers
//     rotate through all of them.
//   - finish removes the peer for the named hash only.
//   - Peer ids: the first connection to hand shake with an id owns it until
//     it disconnects. A second connection claiming an id that is connected
//     already is refused and closed (no established), so nobody can take over
//     another peer's signals. A reconnecting client whose old connection is
//     still open here is refused until the old one times out (ping timeout);
//     the p2pcdn client keeps retrying with backoff.
//   - Events before the handshake are ignored; a connection that does not
//     hand shake within HandshakeTimeout is closed.
//   - Malformed events (wrong argument count or types, bad hashes or ids,
//     oversized signal data) and events beyond the per-connection rate
//     limit are dropped with a log line; after MaxStrikes of them the
//     connection is closed. Unknown event names are dropped without a strike
//     so newer clients keep working.
//   - REPLICATION handshakes (type 1, another mediator) are accepted; such a
//     connection gets answers with local peers only, and may send signals
//     whose id is sender id + receiver id (80 characters), delivered to the
//     local receiver with the sender's id. The server remembers the sender
//     (for two minutes, until the connection closes) and sends local peers'
//     signals to it back over that connection, with the 80-character id,
//     before asking the Federation.
package mediator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// Defaults for the zero values of Server's fields.
const (
	DefaultMaxPeersPerAnswer = 50
	DefaultMaxHashesPerConn  = 10000
	DefaultEventRate         = 100 // events per second per connection
	DefaultEventBurst        = 200
	DefaultMaxStrikes        = 20
	DefaultHandshakeTimeout  = 30 * time.Second
	DefaultMaxPayload        = 1000000 // what the prototype's mediator advertises
	DefaultShutdownTimeout   = 5 * time.Second
)

// Server is a mediator. Its exported fields are its configuration; the zero
// value is a working mediator with the defaults above. Set the fields before
// the first call to Handler, Serve or ListenAndServe and do not change them
// afterwards. A Server is meant to be served once.
type Server struct {
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger

	// MaxPeersPerAnswer caps the ids of one peers answer.
	MaxPeersPerAnswer int
	// MaxHashesPerConn caps the hashes one connection may seed at once;
	// announces beyond it are dropped.
	MaxHashesPerConn int
	// EventRate and EventBurst limit the events one connection may send
	// (token bucket); events beyond it are dropped and count as strikes.
	EventRate  rate.Limit
	EventBurst int
	// MaxStrikes is how many malformed or rate-limited events a connection
	// may send before the server closes it.
	MaxStrikes int
	// HandshakeTimeout closes connections that do not hand shake in time.
	HandshakeTimeout time.Duration
	// MaxPayload caps one Socket.IO packet in bytes.
	MaxPayload int
	// PingInterval and PingTimeout are Engine.IO's heartbeat; zero means the
	// transport's defaults (25 s and 20 s, as the prototype).
	PingInterval, PingTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown in Serve.
	ShutdownTimeout time.Duration

	// Federation, when set, supplies peers of other mediators and relays
	// signals to them.
	Federation Federation
	// ICE, when set, gives MEDIATION peers STUN and TURN servers in
	// established and answers get_ice_servers (ice.go).
	ICE ICEProvider
	// Fallback serves every path that is not the mediator's own
	// (/socket.io/, /healthz, /metrics); nil answers 404.
	Fallback http.Handler

	// Registry holds the mediator's metrics and is what /metrics serves.
	// Other parts of the mediator process (STUN/TURN, federation) register
	// their collectors into it. Nil: the first call to Handler, Serve or
	// Metrics creates one with the Go runtime and process collectors; a
	// Registry given here gets only the mediator's own collectors.
	Registry *prometheus.Registry

	initOnce sync.Once
	sio      *socketio.Server
	mux      *http.ServeMux
	reg      *registry
	routes   *returnRoutes
	metrics  *metrics
	draining atomic.Bool

	// handlers tracks connection handlers so Serve returns after them.
	handlersMu sync.Mutex
	handlers   sync.WaitGroup
	closing    bool
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.reg = newRegistry()
		s.routes = newReturnRoutes()
		if s.Registry == nil {
			s.Registry = newMetricsRegistry()
		}
		s.metrics = newMetrics(s.Registry, s)
		s.sio = &socketio.Server{
			Accept:       s.accept,
			PingInterval: s.PingInterval,
			PingTimeout:  s.PingTimeout,
			MaxPayload:   orDefault(s.MaxPayload, DefaultMaxPayload),
			Logger:       s.logger(),
			OnError:      s.metrics.transportError,
		}
		s.mux = http.NewServeMux()
		s.mux.Handle("/socket.io/", s.sio)
		s.mux.HandleFunc("/healthz", s.serveHealth)
		s.mux.HandleFunc("/metrics", s.serveMetrics(metricsHandler(s.Registry)))
		s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if s.Fallback != nil {
				s.Fallback.ServeHTTP(w, r)
				return
			}
			http.NotFound(w, r)
		})
	})
}

// orDefault returns v, or def when v is zero or negative.
func orDefault[T int | time.Duration | rate.Limit](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Metrics returns the registry /metrics serves (Registry, created if it was
// nil), for other parts of the mediator process to register into.
func (s *Server) Metrics() *prometheus.Registry {
	s.init()
	return s.Registry
}

// Handler returns the mediator's HTTP handler: Socket.IO under /socket.io/,
// GET /healthz, GET /metrics (Prometheus text format) and Fallback for the
// rest. Connections served through it stop when Serve's shutdown runs or,
// when the handler is mounted elsewhere, when Shutdown is called.
func (s *Server) Handler() http.Handler {
	s.init()
	return s.mux
}

// Serve serves the mediator on ln until ctx ends, then shuts down
// gracefully: it stops accepting, closes every Socket.IO connection and
// returns once every connection handler has returned. It returns nil after a
// shutdown requested through ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.init()
	hs := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger().Handler(), slog.LevelDebug),
	}
	s.logger().Info("mediator listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()

	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("mediator: serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
		s.logger().Info("mediator shutting down", "addr", ln.Addr().String())
	}
	sctx, cancel := context.WithTimeout(context.Background(), orDefault(s.ShutdownTimeout, DefaultShutdownTimeout))
	defer cancel()
	// Socket.IO first: long-polling requests and upgraded websockets would
	// otherwise hold http.Server.Shutdown until their heartbeat ends.
	shutErr := s.Shutdown(sctx)
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if serveErr == nil {
		<-errc
	}
	if serveErr != nil {
		return serveErr
	}
	return shutErr
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("mediator: cannot listen on %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Shutdown closes every Socket.IO connection and waits for their handlers,
// until ctx ends. Serve calls it; call it yourself only when Handler is
// mounted in your own http.Server.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.draining.Store(true)
	s.handlersMu.Lock()
	s.closing = true
	s.handlersMu.Unlock()
	err := s.sio.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("mediator: shutdown: connection handlers still running: %w", ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("mediator: shutdown: %w", err)
	}
	return nil
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "shutting down\n")
		return
	}
	io.WriteString(w, "ok\n")
}

// LocalHashes returns every hash that has at least one seeder connected here
// (for announcing this mediator in a DHT).
func (s *Server) LocalHashes() []string {
	s.init()
	return s.reg.hashes()
}

// LocalPeers returns up to max ids of peers connected here that seed hash.
func (s *Server) LocalPeers(hash string, max int) []string {
	s.init()
	return s.reg.seeders(hash, "", max)
}

// DeliverSignal hands a signal from peer from (anywhere) to the local peer
// to. It reports whether to is connected here. Federation links use it for
// signals arriving from other mediators.
func (s *Server) DeliverSignal(hash, from, to, data string) bool {
	s.init()
	p := s.reg.lookup(to)
	if p == nil {
		s.metrics.signalsUnroutable.Inc()
		return false
	}
	s.emit(p.conn, mediation.Signal{Hash: hash, PeerID: from, Data: data})
	s.metrics.signalsRouted.Inc()
	return true
}

func (s *Server) emit(c emitter, m mediation.Message) error {
	if err := c.Emit(m.Event(), m.Args()...); err != nil {
		// The transport closes a connection whose queue overflows; its own
		// handler cleans up after it.
		s.metrics.emitErrors.Inc()
		return err
	}
	return nil
}

// accept starts serving one Socket.IO connection. Its events arrive as
// calls on the connection's reader (socketio.Session), so a connected peer
// costs no goroutine here; every handler is quick and never blocks on the
// network.
func (s *Server) accept(c *socketio.Conn) socketio.Session {
	s.handlersMu.Lock()
	if s.closing {
		s.handlersMu.Unlock()
		c.Close()
		return nil
	}
	s.handlers.Add(1)
	s.handlersMu.Unlock()

	s.metrics.connections.Inc()
	s.metrics.connectionsTotal.Inc()
	h := &conn{
		s:   s,
		c:   c,
		lim: rate.NewLimiter(orDefault(s.EventRate, DefaultEventRate), orDefault(s.EventBurst, DefaultEventBurst)),
	}
	// A timer rather than a goroutine waiting: most connections hand shake
	// at once and the timer is stopped.
	h.deadline = time.AfterFunc(orDefault(s.HandshakeTimeout, DefaultHandshakeTimeout), h.handshakeTimeout)
	return h
}

// conn is the server's state for one connection. Its Event and Closed are
// never called concurrently (socketio.Session); only shook is also read by
// the handshake timer.
type conn struct {
	s          *Server
	c          *socketio.Conn
	lim        *rate.Limiter
	deadline   *time.Timer // handshake timeout
	shook      atomic.Bool // handshaken, for the timer
	strikes    int
	logged     uint8  // dropReason bits already logged, to keep floods out of the log
	self       *peer  // set after a MEDIATION handshake
	mediatorID string // set after a REPLICATION handshake
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
	l.Log(context.Background(), level, msg, append([]any{"conn", h.c.ID(), "remote", h.c.RemoteAddr()}, args...)...)
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
	if h.strikes >= orDefault(h.s.MaxStrikes, DefaultMaxStrikes) {
		h.s.metrics.closed(closeMisbehaving)
		h.log(slog.LevelWarn, "closing misbehaving connection", "strikes", h.strikes, "last_reason", reason)
		return false
	}
	return true
}

// dispatch handles one event and reports whether the connection stays open.
func (h *conn) dispatch(ev socketio.Event) bool {
	h.s.metrics.event(ev.Name)
	if !h.lim.Allow() {
		return h.drop(dropRateLimited, true, fmt.Errorf("more than %v events per second", h.lim.Limit()))
	}
	m, err := mediation.Decode(ev.Name, ev.Args)
	if errors.Is(err, mediation.ErrUnknownEvent) {
		return h.drop(dropUnknownEvent, false, err)
	}
	if err != nil {
		return h.drop(dropMalformed, true, err)
	}
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
		p, err := h.s.reg.register(m.ID, h.c)
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
		max := orDefault(s.MaxPeersPerAnswer, DefaultMaxPeersPerAnswer)
		ids := s.reg.seeders(m.Hash, h.self.id, max)
		if len(ids) < max && s.Federation != nil {
			ids = appendRemote(ids, s.Federation.RemotePeers(m.Hash, max-len(ids)), h.self.id, max)
		}
		s.metrics.peersAnswers.Inc()
		return s.emit(h.c, mediation.Peers{Hash: m.Hash, IDs: ids}) == nil
	case mediation.Announce:
		if _, err := s.reg.announce(h.self, m.Hash, orDefault(s.MaxHashesPerConn, DefaultMaxHashesPerConn)); err != nil {
			return h.drop(dropTooManyHashes, false, err)
		}
	case mediation.Finish:
		s.reg.finish(h.self, m.Hash)
	case mediation.GetICEServers:
		return h.answerICE()
	case mediation.Signal:
		if len(m.PeerID) != mediation.IDLen {
			return h.drop(dropMalformed, true, errors.New("signal from a peer with a relay id"))
		}
		if m.PeerID == h.self.id {
			return h.drop(dropUnexpected, false, errors.New("signal to itself"))
		}
		out := mediation.Signal{Hash: m.Hash, PeerID: h.self.id, Data: m.Data}
		if to := s.reg.lookup(m.PeerID); to != nil {
			s.emit(to.conn, out)
			s.metrics.signalsRouted.Inc()
		} else if via := s.routes.lookup(m.PeerID, time.Now()); via != nil &&
			s.emit(via.c, mediation.Signal{Hash: m.Hash, PeerID: h.self.id + m.PeerID, Data: m.Data}) == nil {
			// Back through the mediator the remote peer's signals came from.
			s.metrics.signalsRelayed.Inc()
		} else if s.Federation != nil && s.Federation.RelaySignal(m.Hash, h.self.id, m.PeerID, m.Data) {
			s.metrics.signalsRelayed.Inc()
		} else {
			s.metrics.signalsUnroutable.Inc()
		}
	default:
		return h.drop(dropUnexpected, false, fmt.Errorf("%s from a peer", m.Event()))
	}
	return true
}

func (h *conn) fromMediator(m mediation.Message) bool {
	s := h.s
	switch m := m.(type) {
	case mediation.GetPeers:
		// Local peers only: answering with remote ones could loop between
		// mediators.
		ids := s.reg.seeders(m.Hash, "", orDefault(s.MaxPeersPerAnswer, DefaultMaxPeersPerAnswer))
		s.metrics.peersAnswers.Inc()
		return s.emit(h.c, mediation.Peers{Hash: m.Hash, IDs: ids}) == nil
	case mediation.Signal:
		from, to, ok := mediation.SplitRelayID(m.PeerID)
		if !ok {
			return h.drop(dropMalformed, true, errors.New("signal from a mediator without a relay id"))
		}
		// Only senders that are not our own peers: a mediator must not be
		// able to divert signals meant for a local peer.
		if s.reg.lookup(from) == nil {
			s.routes.learn(from, h, time.Now())
		}
		s.DeliverSignal(m.Hash, from, to, m.Data)
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

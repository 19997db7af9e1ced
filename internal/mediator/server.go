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
//   - Events before the handshake are ignored; a connection that has not
//     handed shake HandshakeTimeout after its transport opened is closed.
//   - Malformed events (wrong argument count or types, bad hashes or ids,
//     oversized signal data) are dropped with a log line and count as
//     strikes; after MaxStrikes of them the connection is closed. Unknown
//     event names are dropped without a strike so newer clients keep working.
//   - Rate limits count events and, separately, the hashes they name (a batch
//     event names many): beyond either, events are dropped. Bursts are
//     allowed (EventBurst, HashBurst), and a connection over its rate earns
//     at most one strike per second, so a client whose events arrive bunched
//     (a busy machine, a stalled network) is not closed for it.
//   - Limits per client address (IPv6 per /64, behind TrustedProxies the
//     forwarded address): TCP connections, Engine.IO sessions, announced
//     hashes. See docs/security.md.
//   - Signals to a local peer are dropped, never queued without bound, when
//     they exceed MaxSignalSize or the receiver's budget (SignalRate, shared
//     fairly between senders) or when the receiver's queue is half full: a
//     flood costs the receiver some signals, never its connection.
//   - REPLICATION handshakes (type 1, another mediator) are accepted; such a
//     connection gets answers with local peers only, and may send signals
//     whose id is sender id + receiver id (80 characters), delivered to the
//     local receiver with the sender's id. Such a link speaks only for the
//     remote peers behind it: a sender id that is connected here is refused,
//     and so is one that another link holds (the first link to relay from an
//     id holds it until it closes or two minutes pass without a signal from
//     that id; a link holds at most 10,000 ids). The server sends local peers'
//     signals for such a remote peer back over the link that holds it, with
//     the 80-character id, before asking the Federation.
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

	"github.com/p2pcdn/p2pcdn/internal/clientip"
	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// Defaults for the zero values of Server's fields.
const (
	DefaultMaxPeersPerAnswer = 50
	// DefaultMaxHashesPerConn lets one seeder announce a site's whole asset
	// tree; at about 150 bytes a hash that is 15 MB.
	DefaultMaxHashesPerConn   = 100000
	DefaultMaxHashesPerClient = 200000
	DefaultMaxSeeders         = 2000000 // every announced (peer, hash) pair, about 320 MB
	DefaultEventRate          = 100     // events per second per connection
	// DefaultHashRate (hashes named per second per connection) lets a seeder
	// announce 100,000 files in about ten seconds; its burst is
	// DefaultMaxHashesPerConn.
	DefaultHashRate             = 10000
	DefaultBatch                = 1000 // hashes per batch event
	DefaultMaxConnsPerClient    = 1000 // TCP connections per client address
	DefaultMaxSessionsPerClient = 1000 // Engine.IO sessions per client address
	DefaultMaxSignalSize        = 32 << 10
	DefaultSignalRate           = 512 << 10 // bytes of signals per second one peer may receive
	DefaultMaxStrikes           = 20
	DefaultHandshakeTimeout     = 30 * time.Second
	DefaultMaxPayload           = 1000000 // what the prototype's mediator advertises
	DefaultShutdownTimeout      = 5 * time.Second
)

// Server is a mediator. Its exported fields are its configuration; the zero
// value is a working mediator with the defaults above. Set the fields before
// the first call to Handler, Serve or ListenAndServe and do not change them
// afterwards. A Server is meant to be served once. Limits that take -1 are
// off with it.
type Server struct {
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger

	// MaxPeersPerAnswer caps the ids of one peers answer.
	MaxPeersPerAnswer int
	// MaxHashesPerConn caps the hashes one connection may seed at once, and
	// MaxHashesPerClient those of all connections from one client address;
	// MaxSeeders caps the (peer, hash) pairs of the whole mediator. Announces
	// beyond them are dropped. -1: no limit.
	MaxHashesPerConn   int
	MaxHashesPerClient int
	MaxSeeders         int
	// EventRate and EventBurst limit the events one connection may send
	// (token bucket; the burst defaults to ten seconds' worth). HashRate and
	// HashBurst limit the hashes its events name: one for get_peers,
	// announce and finish, the batch's length for their batch forms (burst
	// default: MaxHashesPerConn). Events beyond them are dropped; a
	// connection over its rate earns a strike at most once a second.
	EventRate  rate.Limit
	EventBurst int
	HashRate   rate.Limit
	HashBurst  int
	// Batch is the most hashes one batch event (announce_many, finish_many,
	// get_peers_many) may name, advertised in established; -1 turns batch
	// events off.
	Batch int
	// MaxStrikes is how many malformed or rate-limited events a connection
	// may send before the server closes it.
	MaxStrikes int
	// HandshakeTimeout closes connections that have not handed shake this
	// long after their transport opened.
	HandshakeTimeout time.Duration
	// MaxPayload caps one Socket.IO packet in bytes.
	MaxPayload int
	// PingInterval and PingTimeout are Engine.IO's heartbeat; zero means the
	// transport's defaults (25 s and 20 s, as the prototype).
	PingInterval, PingTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown in Serve.
	ShutdownTimeout time.Duration

	// MaxConnsPerClient caps the TCP connections Serve accepts from one
	// client address, and MaxSessionsPerClient its Socket.IO sessions
	// (WebSocket or polling). -1: no limit. Trusted proxies are not counted
	// as clients: the addresses they forward are.
	MaxConnsPerClient    int
	MaxSessionsPerClient int
	// TrustedProxies are reverse proxies whose X-Forwarded-For or Forwarded
	// header names the client. Without them every limit per client address
	// applies to the TCP peer, which behind a proxy is the proxy.
	TrustedProxies clientip.Proxies

	// MaxSignalSize caps the data of a signal the mediator passes on, and
	// SignalRate the bytes of signals per second one peer may receive
	// (burst: four seconds' worth; one sender may use an eighth of it).
	// Signals beyond them are dropped. SignalRate -1: no budget.
	MaxSignalSize int
	SignalRate    int

	// Federation, when set, supplies peers of other mediators and relays
	// signals to them.
	Federation Federation
	// ICE, when set, gives MEDIATION peers STUN and TURN servers in
	// established and answers get_ice_servers (ice.go).
	ICE ICEProvider
	// Fallback serves every path that is not the mediator's own
	// (/socket.io/, /healthz, /metrics, /hashes); nil answers 404.
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
	top      *topCache
	draining atomic.Bool
	lim      limits // resolved configuration

	// handlers tracks connection handlers so Serve returns after them.
	handlersMu sync.Mutex
	handlers   sync.WaitGroup
	closing    bool
}

// limits is the configuration with defaults applied.
type limits struct {
	maxPeers         int
	maxHashesPerConn int
	eventRate        rate.Limit
	eventBurst       int
	hashRate         rate.Limit
	hashBurst        int
	batch            int
	maxStrikes       int
	handshake        time.Duration
	maxSignalSize    int
	signals          signalLimits
}

// limit resolves a limit field: 0 is the default, negative is none (0).
func limit(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		l := &s.lim
		l.maxPeers = orDefault(s.MaxPeersPerAnswer, DefaultMaxPeersPerAnswer)
		l.maxHashesPerConn = limit(s.MaxHashesPerConn, DefaultMaxHashesPerConn)
		l.eventRate = orDefault(s.EventRate, DefaultEventRate)
		l.eventBurst = orDefault(s.EventBurst, int(10*l.eventRate))
		l.hashRate = orDefault(s.HashRate, DefaultHashRate)
		l.hashBurst = orDefault(s.HashBurst, max(l.maxHashesPerConn, DefaultBatch, int(l.hashRate)))
		l.batch = min(limit(s.Batch, DefaultBatch), mediation.MaxBatch)
		l.maxStrikes = orDefault(s.MaxStrikes, DefaultMaxStrikes)
		l.handshake = orDefault(s.HandshakeTimeout, DefaultHandshakeTimeout)
		l.maxSignalSize = min(orDefault(s.MaxSignalSize, DefaultMaxSignalSize), mediation.MaxSignalData)
		if r := limit(s.SignalRate, DefaultSignalRate); r > 0 {
			l.signals = signalLimits{
				rate:       rate.Limit(r),
				burst:      max(4*r, 2*l.maxSignalSize),
				sender:     rate.Limit(r / 8),
				senderMax:  max(r/2, 2*l.maxSignalSize),
				maxSenders: 64,
			}
		}

		s.reg = newRegistry()
		s.reg.perClient = clientip.NewCounter(limit(s.MaxHashesPerClient, DefaultMaxHashesPerClient))
		s.reg.maxSeeders = limit(s.MaxSeeders, DefaultMaxSeeders)
		s.routes = newReturnRoutes()
		if s.Registry == nil {
			s.Registry = newMetricsRegistry()
		}
		s.metrics = newMetrics(s.Registry, s)
		s.top = &topCache{reg: s.reg}
		maxPayload := orDefault(s.MaxPayload, DefaultMaxPayload)
		s.sio = &socketio.Server{
			Accept:       s.accept,
			PingInterval: s.PingInterval,
			PingTimeout:  s.PingTimeout,
			MaxPayload:   maxPayload,
			// Room for the answers to a whole get_peers_many besides the
			// usual traffic; the bytes stay bounded by MaxPendingBytes.
			MaxPending:           max(256, 4*l.batch),
			ConnectTimeout:       l.handshake,
			ClientAddr:           s.TrustedProxies.FromRequest,
			MaxSessionsPerClient: limit(s.MaxSessionsPerClient, DefaultMaxSessionsPerClient),
			Logger:               s.logger(),
			OnError:              s.transportError,
		}
		s.mux = http.NewServeMux()
		s.mux.Handle("/socket.io/", s.sio)
		s.mux.HandleFunc("/healthz", s.serveHealth)
		s.mux.HandleFunc("/metrics", s.serveMetrics(metricsHandler(s.Registry)))
		s.mux.HandleFunc("/hashes", s.serveHashes)
		s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if s.Fallback != nil {
				s.Fallback.ServeHTTP(w, r)
				return
			}
			http.NotFound(w, r)
		})
	})
}

// transportError counts the transport's errors, and its refusals of
// sessions beyond the per-client limit among the limits too.
func (s *Server) transportError(kind string) {
	s.metrics.transportError(kind)
	if kind == "too_many_sessions" {
		s.metrics.limit(limitSessions)
	}
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
// GET /healthz, GET /metrics (Prometheus text format), GET /hashes (what
// the peers here seed, for pages) and Fallback for the rest. Connections
// served through it stop when Serve's shutdown runs or, when the handler is
// mounted elsewhere, when Shutdown is called. The per-client TCP connection
// limit applies only in Serve, which owns the listener.
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
	addr := ln.Addr()
	ln = clientip.LimitListener(ln, limit(s.MaxConnsPerClient, DefaultMaxConnsPerClient), s.TrustedProxies, func(a net.Addr) {
		s.metrics.limit(limitConnections)
		s.logger().Debug("too many connections from one address, refusing", "remote", a.String())
	})
	hs := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		// Idle keep-alive connections would otherwise be held forever.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(s.logger().Handler(), slog.LevelDebug),
	}
	s.logger().Info("mediator listening", "addr", addr.String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()

	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("mediator: serving on %s: %w", addr, err)
	case <-ctx.Done():
		s.logger().Info("mediator shutting down", "addr", addr.String())
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

// DeliverSignal hands a signal from peer from, a peer of another mediator,
// to the local peer to. Federation links use it for signals arriving from
// other mediators. It reports whether the signal was delivered: not when
// to is not connected here, when from claims to be a peer connected here
// (a link may only speak for peers behind it), or when the receiver's
// limits drop it.
func (s *Server) DeliverSignal(hash, from, to, data string) bool {
	s.init()
	if s.reg.lookup(from) != nil {
		s.metrics.drop(dropSpoofedSender)
		return false
	}
	return s.deliver(hash, from, to, data)
}

// deliver passes a signal from sender from (here or elsewhere) to local peer
// to within the receiver's limits, and reports whether it did.
func (s *Server) deliver(hash, from, to, data string) bool {
	p := s.reg.lookup(to)
	if p == nil {
		s.metrics.signalsUnroutable.Inc()
		return false
	}
	if len(data) > s.lim.maxSignalSize {
		s.metrics.signalDropped(signalDropSize)
		return false
	}
	// The budget counts what the receiver gets: data plus the event around it.
	if !p.signals.allow(&s.lim.signals, from, len(data)+signalOverhead, time.Now()) {
		s.metrics.signalDropped(signalDropRate)
		return false
	}
	if err := p.conn.TryEmit(mediation.EventSignal, hash, from, data); err != nil {
		if errors.Is(err, socketio.ErrQueueFull) {
			s.metrics.signalDropped(signalDropQueueFull)
		} else {
			s.metrics.emitErrors.Inc()
		}
		return false
	}
	s.metrics.signalsRouted.Inc()
	return true
}

// signalOverhead is a signal event's size besides its data.
const signalOverhead = len(`42["signal","","",""]`) + 2*mediation.IDLen

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
		s:      s,
		c:      c,
		events: rate.NewLimiter(s.lim.eventRate, s.lim.eventBurst),
		hashes: rate.NewLimiter(s.lim.hashRate, s.lim.hashBurst),
	}
	// A timer rather than a goroutine waiting: most connections hand shake
	// at once and the timer is stopped. It counts from the transport's
	// opening, so time spent before connecting the namespace counts too.
	h.deadline = time.AfterFunc(time.Until(c.Opened().Add(s.lim.handshake)), h.handshakeTimeout)
	return h
}

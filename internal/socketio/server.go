package socketio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/p2pcdn/p2pcdn/internal/clientip"
)

// Server serves Engine.IO 4 / Socket.IO 5 (default namespace only, JSON events) at the path it is mounted on,
// normally "/socket.io/", over HTTP long-polling and WebSocket. The zero value plus a Handler is ready to use.
type Server struct {
	// Handler runs in its own goroutine for each connection once the client connected the namespace ("40");
	// ctx is cancelled when the connection closes or the server shuts down. When Handler returns the
	// connection is closed. A nil Handler accepts connections and drops their events.
	Handler func(ctx context.Context, c *Conn)
	// Accept, when set, is used instead of Handler: it is called once the client connected the namespace
	// and returns the Session that receives the connection's events (nil refuses the connection, which
	// Accept should then close). Events are then handed over by calls on the goroutine reading the
	// connection instead of through ReadEvent, so a connection costs no goroutine of its own: the choice
	// for servers holding many mostly idle connections. Accept and the Session's methods must not block.
	// They run on a few shared worker goroutines that end when idle or at Shutdown.
	Accept       func(c *Conn) Session
	PingInterval time.Duration // default 25s
	PingTimeout  time.Duration // default 20s
	MaxPayload   int           // default 1_000_000 bytes, advertised in the open packet and enforced
	MaxPending   int           // queued outbound packets per connection, default 256
	// MaxPendingBytes bounds the bytes queued per connection, default 2*MaxPayload.
	MaxPendingBytes int
	// ConnectTimeout closes a connection whose client has not connected the namespace ("40") this long
	// after the transport opened (the polling handshake or the WebSocket's open packet), so a client that
	// opens sockets and answers pings but never connects cannot hold them. Default 45s, as socket.io's.
	ConnectTimeout time.Duration
	// UnpolledTimeout closes a polling session that has seen no request since its handshake for this long:
	// real clients poll at once, so such sessions are someone collecting them. Default 10s.
	UnpolledTimeout time.Duration
	// ClientAddr returns the address of the client behind a request, for MaxSessionsPerClient and
	// Conn.ClientAddr; nil means the TCP peer's (behind a reverse proxy see clientip.Proxies).
	ClientAddr func(r *http.Request) netip.Addr
	// MaxSessionsPerClient bounds the open sessions (polling or WebSocket) of one client address, IPv6
	// per /64; handshakes beyond it are refused with HTTP 429. 0 means no limit.
	MaxSessionsPerClient int
	Logger               *slog.Logger
	// OnError, if set, is called with a short kind ("unknown_sid", "bad_request", "payload_too_large",
	// "protocol", "slow_consumer", "ping_timeout", "binary", "unsupported_packet", "connect_timeout",
	// "unpolled", "too_many_sessions", "body_timeout") for metrics.
	OnError func(kind string)

	once     sync.Once
	upgrader websocket.Upgrader
	work     *workers  // with Accept only
	readBufs sync.Pool // *[]byte for Conn.readMessage
	packets  sync.Pool // []byte: outbound packets, reused once written to a websocket

	sessions *clientip.Counter // open sessions per client, nil without a limit

	mu       sync.Mutex
	conns    map[string]*Conn
	shutdown bool
	wg       sync.WaitGroup // handlers and websocket readers
}

const (
	defaultPingInterval = 25 * time.Second
	defaultPingTimeout  = 20 * time.Second
	defaultMaxPayload   = 1_000_000
	defaultMaxPending   = 256
	defaultConnect      = 45 * time.Second
	defaultUnpolled     = 10 * time.Second
	// maxPacketsPerPost bounds how many packets one polling POST may carry.
	maxPacketsPerPost = 1024
)

// Engine.IO's HTTP error codes, sent as {"code":N,"message":"..."} with status 400.
const (
	errCodeUnknownTransport = 0
	errCodeUnknownSid       = 1
	errCodeBadHandshake     = 2
	errCodeBadRequest       = 3
	errCodeForbidden        = 4
	errCodeUnsupportedEIO   = 5
)

var errMessages = [...]string{"Transport unknown", "Session ID unknown", "Bad handshake method", "Bad request", "Forbidden", "Unsupported protocol version"}

func (s *Server) init() {
	s.once.Do(func() {
		if s.PingInterval <= 0 {
			s.PingInterval = defaultPingInterval
		}
		if s.PingTimeout <= 0 {
			s.PingTimeout = defaultPingTimeout
		}
		if s.MaxPayload <= 0 {
			s.MaxPayload = defaultMaxPayload
		}
		if s.MaxPending <= 0 {
			s.MaxPending = defaultMaxPending
		}
		if s.MaxPendingBytes <= 0 {
			s.MaxPendingBytes = 2 * s.MaxPayload
		}
		if s.ConnectTimeout <= 0 {
			s.ConnectTimeout = defaultConnect
		}
		if s.UnpolledTimeout <= 0 {
			s.UnpolledTimeout = defaultUnpolled
		}
		s.sessions = clientip.NewCounter(s.MaxSessionsPerClient)
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		s.conns = make(map[string]*Conn)
		if s.Accept != nil {
			s.work = newWorkers(s)
		}
		s.upgrader = websocket.Upgrader{
			// Small read buffer and pooled write buffers keep an idle connection cheap.
			ReadBufferSize:  1024,
			WriteBufferSize: 4096,
			WriteBufferPool: &sync.Pool{},
			// Pages and mediators live on different origins; the protocol is CORS "*".
			CheckOrigin: func(*http.Request) bool { return true },
			Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
				s.reportError("bad_request")
				writeEngineError(w, status, errCodeBadRequest)
			},
		}
	})
}

func (s *Server) reportError(kind string) {
	if s != nil && s.OnError != nil {
		s.OnError(kind)
	}
}

// Len reports the number of open connections.
func (s *Server) Len() int {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		c.mu.Lock()
		if !c.closed {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// Shutdown closes every connection (clients see a transport close and may reconnect elsewhere), refuses new
// ones, and waits for handlers to return or ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	if !s.shutdown && s.work != nil {
		close(s.work.quit)
	}
	s.shutdown = true
	conns := make([]*Conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.closeWith(errShutdown, false)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("socketio: shutdown: handlers still running: %w", ctx.Err())
	}
}

// track registers a goroutine with the server's WaitGroup unless the server is shutting down.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.wg.Add(1)
	return true
}

// Session receives one connection's events when Server.Accept is set.
type Session interface {
	// Event is called for each event in arrival order, never concurrently with another call for the same
	// connection, on the goroutine reading it; it must not block (Emit does not).
	Event(ev Event)
	// Closed is called once after the connection closed; no Event follows it.
	Closed()
}

func (s *Server) startHandler(c *Conn) {
	if s.Accept != nil {
		s.startSession(c)
		return
	}
	if s.Handler == nil {
		c.mu.Lock()
		c.discard = true
		c.mu.Unlock()
		return
	}
	if !s.track() {
		c.closeWith(errShutdown, false)
		return
	}
	go func() {
		defer s.wg.Done()
		defer c.Close()
		s.Handler(c.ctx, c)
	}()
}

// startSession asks Accept for c's Session. The server's WaitGroup counts the session until its Closed
// call, so Shutdown waits for it as it waits for handlers.
func (s *Server) startSession(c *Conn) {
	if !s.track() {
		c.closeWith(errShutdown, false)
		return
	}
	sess := s.Accept(c)
	if sess == nil {
		s.wg.Done()
		c.mu.Lock()
		c.discard = true
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	c.sess = sess
	closed := c.closed
	c.mu.Unlock()
	if closed {
		c.endSession() // closed while Accept ran: closeWith saw no session to end
	}
}

// connClosed forgets a closed connection. A polling session whose client polls stays reachable briefly so
// its next poll receives the close packet instead of an unknown-sid error; one that never polled, or that
// its client closed, goes at once. Until it goes it counts against its client's sessions.
func (s *Server) connClosed(c *Conn, reason error) {
	c.mu.Lock()
	linger := c.transport == transportPolling && c.polled && !errors.Is(reason, errRemoteClosed)
	c.mu.Unlock()
	if !linger {
		s.remove(c)
		return
	}
	time.AfterFunc(s.PingTimeout, func() { s.remove(c) })
}

func (s *Server) remove(c *Conn) {
	s.mu.Lock()
	removed := s.conns[c.id] == c
	if removed {
		delete(s.conns, c.id)
	}
	s.mu.Unlock()
	if removed {
		s.sessions.Release(c.client, 1)
	}
}

// clientAddr is the client address of r (ClientAddr, or the TCP peer's).
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	if s.ClientAddr != nil {
		return s.ClientAddr(r)
	}
	return clientip.FromAddrString(r.RemoteAddr)
}

func newSid() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func setCORS(h http.Header, r *http.Request) {
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
		h.Set("Access-Control-Max-Age", "86400")
	}
}

func writeEngineError(w http.ResponseWriter, status, code int) {
	body, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, errMessages[code]})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// fail answers with an Engine.IO error; kind "" means the caller reports the error itself.
func (s *Server) fail(w http.ResponseWriter, code int, kind string) {
	if kind != "" {
		s.reportError(kind)
	}
	status := http.StatusBadRequest
	if code == errCodeForbidden {
		status = http.StatusForbidden
	}
	writeEngineError(w, status, code)
}

// ServeHTTP implements the Engine.IO HTTP endpoints: handshake, long-polling GET/POST and WebSocket.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.init()
	setCORS(w.Header(), r)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	q := r.URL.Query()
	if q.Get("EIO") != "4" {
		s.fail(w, errCodeUnsupportedEIO, "bad_request")
		return
	}
	transport := q.Get("transport")
	if transport != transportPolling && transport != transportWebsocket {
		s.fail(w, errCodeUnknownTransport, "bad_request")
		return
	}
	sid := q.Get("sid")
	if sid == "" {
		s.handshake(w, r, transport)
		return
	}
	s.mu.Lock()
	c := s.conns[sid]
	s.mu.Unlock()
	if c == nil {
		s.fail(w, errCodeUnknownSid, "unknown_sid")
		return
	}
	if transport == transportWebsocket {
		s.upgrade(w, r, c)
		return
	}
	c.mu.Lock()
	wrong := c.transport != transportPolling
	c.mu.Unlock()
	if wrong {
		s.fail(w, errCodeBadRequest, "bad_request")
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.poll(w, r, c)
	case http.MethodPost:
		s.post(w, r, c)
	default:
		s.fail(w, errCodeBadRequest, "bad_request")
	}
}

// openPacket is the Engine.IO open packet's JSON.
func (s *Server) openPacket(sid string, upgrades []string) []byte {
	b, _ := json.Marshal(struct {
		Sid          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int64    `json:"pingInterval"`
		PingTimeout  int64    `json:"pingTimeout"`
		MaxPayload   int      `json:"maxPayload"`
		// Ours (docs/extensions.md): packets are handled in order, so a client may send its events in
		// the flight of the namespace connect. socket.io's own clients ignore the field.
		P2PCDN int `json:"p2pcdn"`
	}{sid, upgrades, s.PingInterval.Milliseconds(), s.PingTimeout.Milliseconds(), s.MaxPayload, 1})
	return append([]byte{engineOpen}, b...)
}

func (s *Server) newConn(r *http.Request, transport string, client netip.Addr) *Conn {
	c := newConn(newSid(), r.RemoteAddr, s.Logger)
	c.srv = s
	c.client = client
	c.opened = time.Now()
	c.host = r.Host
	c.transport = transport
	c.maxPayload = s.MaxPayload
	c.maxPending = s.MaxPending
	c.maxPendingBytes = s.MaxPendingBytes
	c.pingInterval = s.PingInterval
	c.pingTimeout = s.PingTimeout
	if transport == transportPolling {
		c.wake = make(chan struct{}, 1)
	}
	return c
}

// register adds c to the session table unless the server is shutting down. The caller holds a session
// slot of c's client, which remove gives back; on false the caller gives it back.
func (s *Server) register(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.conns[c.id] = c
	return true
}

func (s *Server) handshake(w http.ResponseWriter, r *http.Request, transport string) {
	if transport == transportPolling && r.Method != http.MethodGet {
		s.fail(w, errCodeBadHandshake, "bad_request")
		return
	}
	client := s.clientAddr(r)
	if !s.sessions.Acquire(client, 1) {
		s.reportError("too_many_sessions")
		s.Logger.Debug("too many sessions from one client, refusing", "client", client, "limit", s.sessions.Limit())
		writeEngineError(w, http.StatusTooManyRequests, errCodeForbidden)
		return
	}
	if transport == transportPolling {
		c := s.newConn(r, transportPolling, client)
		if !s.register(c) {
			s.sessions.Release(client, 1)
			http.Error(w, "server shutting down", http.StatusServiceUnavailable)
			return
		}
		c.startPing()
		c.startOpenTimer(min(s.UnpolledTimeout, s.ConnectTimeout))
		writePollResponse(w, s.openPacket(c.id, []string{transportWebsocket}))
		return
	}
	if !s.track() {
		s.sessions.Release(client, 1)
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.sessions.Release(client, 1)
		s.wg.Done()
		return // the upgrader already answered
	}
	ws.SetReadLimit(int64(s.MaxPayload))
	c := s.newConn(r, transportWebsocket, client)
	_ = ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := ws.WriteMessage(websocket.TextMessage, s.openPacket(c.id, []string{})); err != nil {
		_ = ws.Close()
		s.sessions.Release(client, 1)
		s.wg.Done()
		return
	}
	c.ws = ws
	if !s.register(c) {
		_ = ws.Close()
		s.sessions.Release(client, 1)
		s.wg.Done()
		return
	}
	c.startPing()
	c.startOpenTimer(s.ConnectTimeout)
	s.goReadLoop(c, ws)
}

// Outbound packets between these capacities are reused: smaller ones are cheap to allocate, larger ones
// rare enough not to be worth holding on to.
const (
	minRecycledPacket = 256
	maxRecycledPacket = 16 << 10
)

// packetBuf returns an empty buffer to encode an outbound packet into.
func (s *Server) packetBuf() []byte {
	b, _ := s.packets.Get().([]byte)
	return b[:0]
}

// recyclePacket takes back a packet the writer is done with; answers to get_peers are the bulk of what a
// mediator allocates otherwise.
func (s *Server) recyclePacket(p []byte) {
	if c := cap(p); c >= minRecycledPacket && c <= maxRecycledPacket {
		s.packets.Put(p[:0]) // boxing the slice header costs 24 bytes; the pool saves the backing array
	}
}

// goReadLoop reads ws in a goroutine of its own, owned by the server's WaitGroup (the caller's track), so
// ServeHTTP can return: net/http then frees its per-connection state (request, bufio reader and writer,
// the handler's stack), which would otherwise stay alive for the life of every websocket.
func (s *Server) goReadLoop(c *Conn, ws *websocket.Conn) {
	if s.work != nil {
		c.handled = make(chan error, 1)
	}
	go func() {
		defer s.wg.Done()
		c.readLoop(ws)
	}()
}

// upgrade handles a WebSocket request for an existing polling session: "2probe" -> "3probe", pending poll
// answered with noop, then "5" switches the session to the WebSocket.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, c *Conn) {
	c.mu.Lock()
	ok := c.transport == transportPolling && !c.probing && !c.closed
	c.polled = true
	c.mu.Unlock()
	if !ok {
		s.fail(w, errCodeBadRequest, "bad_request")
		return
	}
	if !s.track() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.wg.Done()
		return
	}
	ws.SetReadLimit(int64(s.MaxPayload))
	// Until the switch, the session does not know this socket: close it if the session ends meanwhile.
	stop := context.AfterFunc(c.ctx, func() { _ = ws.Close() })
	err = s.probe(c, ws)
	stop()
	if err != nil {
		c.mu.Lock()
		c.probing = false
		c.mu.Unlock()
		c.log.Debug("websocket upgrade failed, staying on polling", "sid", c.id, "err", err)
		_ = ws.Close()
		s.wg.Done()
		return
	}
	s.goReadLoop(c, ws)
}

func (s *Server) probe(c *Conn, ws *websocket.Conn) error {
	// The probe must complete within a ping cycle; a client that opens the socket and stalls is dropped.
	deadline := time.Now().Add(s.PingTimeout)
	_ = ws.SetReadDeadline(deadline)
	_, data, err := ws.ReadMessage()
	if err != nil {
		return fmt.Errorf("read probe: %w", err)
	}
	if string(data) != "2probe" {
		return fmt.Errorf("expected 2probe, got %.20q", data)
	}
	_ = ws.SetWriteDeadline(deadline)
	if err := ws.WriteMessage(websocket.TextMessage, []byte("3probe")); err != nil {
		return fmt.Errorf("write probe answer: %w", err)
	}
	c.mu.Lock()
	if c.closed || c.probing || c.transport != transportPolling {
		c.mu.Unlock()
		return errors.New("session closed or already upgrading")
	}
	c.probing = true
	c.notifyPoll() // the pending poll answers noop so the client can pause polling
	c.mu.Unlock()
	for {
		_, data, err = ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("read upgrade: %w", err)
		}
		switch string(data) {
		case "5":
			_ = ws.SetReadDeadline(time.Time{})
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				return ErrClosed
			}
			c.transport = transportWebsocket
			c.ws = ws
			c.probing = false
			c.notifyPoll()
			if len(c.queue) > 0 {
				c.writing = true
				go c.writeLoop(ws)
			}
			c.mu.Unlock()
			return nil
		case "6", "2probe":
			continue
		default:
			return fmt.Errorf("expected upgrade packet, got %.20q", data)
		}
	}
}

func writePollResponse(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// poll answers a long-polling GET with the queued packets, waiting for some if there are none.
func (s *Server) poll(w http.ResponseWriter, r *http.Request, c *Conn) {
	if !s.enter(w, c, &c.polling, "long-poll") {
		return
	}
	defer c.leave(&c.polling)
	// Safety net: the server pings every PingInterval, so a poll normally ends well before this.
	limit := time.NewTimer(s.PingInterval + s.PingTimeout)
	defer limit.Stop()
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			body := c.takeLocked()
			closed := c.closed && len(c.queue) == 0
			c.mu.Unlock()
			writePollResponse(w, body)
			if closed {
				s.remove(c)
			}
			return
		}
		if c.closed {
			c.mu.Unlock()
			writePollResponse(w, []byte{engineClose})
			s.remove(c)
			return
		}
		if c.probing || c.transport != transportPolling {
			c.mu.Unlock()
			writePollResponse(w, []byte{engineNoop})
			return
		}
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-limit.C:
			writePollResponse(w, []byte{engineNoop})
			return
		case <-r.Context().Done():
			return
		}
	}
}

// takeLocked removes queued packets up to MaxPayload bytes (at least one) and joins them.
func (c *Conn) takeLocked() []byte {
	n, size := 0, 0
	for n < len(c.queue) {
		add := len(c.queue[n])
		if n > 0 {
			add++
		}
		if n > 0 && size+add > c.maxPayload {
			break
		}
		size += add
		n++
	}
	body := appendPayload(make([]byte, 0, size), c.queue[:n])
	for i := 0; i < n; i++ {
		c.queueBytes -= len(c.queue[i])
		c.queue[i] = nil
	}
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil
	}
	return body
}

// post accepts a polling body of packets separated by "\x1e".
func (s *Server) post(w http.ResponseWriter, r *http.Request, c *Conn) {
	if !s.enter(w, c, &c.posting, "polling POST") {
		return
	}
	defer c.leave(&c.posting)
	// A body trickling in must not outlive its session or hold the connection: it gets a ping cycle, and
	// none once the session is gone.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.PingTimeout))
	stop := context.AfterFunc(c.ctx, func() { _ = rc.SetReadDeadline(time.Now()) })
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.MaxPayload)))
	stop()
	if err != nil {
		// The rest of the body is not wanted: close rather than let net/http read it for keep-alive.
		w.Header().Set("Connection", "close")
		var tooBig *http.MaxBytesError
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.reportError("body_timeout")
			c.closeWith(fmt.Errorf("socketio: polling body from %s not received within %v: %w", c.remote, s.PingTimeout, err), false)
			http.Error(w, "request body too slow", http.StatusRequestTimeout)
			return
		}
		if errors.As(err, &tooBig) {
			s.reportError("payload_too_large")
			c.closeWith(fmt.Errorf("socketio: polling body from %s larger than %d bytes", c.remote, s.MaxPayload), false)
			http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
			return
		}
		c.closeWith(fmt.Errorf("socketio: read polling body from %s: %w", c.remote, err), false)
		s.fail(w, errCodeBadRequest, "bad_request")
		return
	}
	_ = rc.SetReadDeadline(time.Time{}) // keep-alive: the next request must not inherit it
	packets, err := SplitPayload(string(body), maxPacketsPerPost)
	if err != nil {
		s.fail(w, errCodeBadRequest, "")
		c.protocolError(err)
		return
	}
	for _, p := range packets {
		if err := c.handlePacket(p); err != nil {
			s.fail(w, errCodeBadRequest, "")
			c.protocolError(err)
			return
		}
	}
	w.Header().Set("Content-Type", "text/html")
	_, _ = io.WriteString(w, "ok")
}

// enter claims one of c's polling request slots (busy is c.polling or
// c.posting). Engine.IO allows one request of each kind at a time: a second
// one is a protocol error that fails the request and closes the connection.
func (s *Server) enter(w http.ResponseWriter, c *Conn, busy *bool, kind string) bool {
	c.mu.Lock()
	taken := *busy
	*busy = true
	c.polled = true
	c.mu.Unlock()
	if taken {
		s.fail(w, errCodeBadRequest, "")
		c.protocolError(fmt.Errorf("overlapping %s requests", kind))
		return false
	}
	return true
}

// leave releases a slot claimed by enter.
func (c *Conn) leave(busy *bool) {
	c.mu.Lock()
	*busy = false
	c.mu.Unlock()
}

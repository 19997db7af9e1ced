package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Event is one Socket.IO EVENT packet (42[...]) on the default namespace.
type Event struct {
	Name string
	Args []json.RawMessage
}

var (
	// ErrClosed is returned by Emit and ReadEvent once the connection is closed.
	ErrClosed = errors.New("socketio: connection closed")
	// ErrSlowConsumer is the reason a connection was closed because its outbound queue overflowed.
	ErrSlowConsumer = errors.New("socketio: peer reads too slowly, outbound queue full")
	// ErrPingTimeout is the reason a connection was closed because the other side stopped answering.
	ErrPingTimeout = errors.New("socketio: ping timeout")
	// errRemoteClosed marks a clean close by the other side; ReadEvent reports it as io.EOF.
	// ErrInboundOverflow is the reason a connection was closed because the other side sent more events
	// than the application read.
	ErrInboundOverflow = errors.New("socketio: too many unread events")
	// ErrQueueFull is returned by TryEmit when the event was dropped to keep the connection's queue bounded.
	ErrQueueFull = errors.New("socketio: outbound queue too full, event dropped")
	// ErrConnectTimeout is the reason a connection was closed because its client did not connect the
	// namespace (or, polling, did not poll) in time.
	ErrConnectTimeout = errors.New("socketio: client did not connect in time")
	errRemoteClosed   = errors.New("socketio: closed by the other side")
	errShutdown       = errors.New("socketio: server shutting down")
)

const (
	transportPolling   = "polling"
	transportWebsocket = "websocket"
	// writeTimeout bounds one websocket frame write so a stalled peer cannot pin the writer.
	writeTimeout = 10 * time.Second
	// closeGrace is how long a closing websocket waits for the peer's close frame.
	closeGrace = 2 * time.Second
	// readBufSize is the size of the pooled buffers inbound messages are read into; messages are mostly
	// far smaller, signals with SDP a few KiB. Buffers grown past maxPooledReadBuf are not kept.
	readBufSize      = 4096
	maxPooledReadBuf = 64 << 10
	// maxPingData bounds the payload of a ping we answer: the pong echoes it, and Engine.IO only ever
	// sends "probe". A larger one is a protocol error rather than memory for the other side to fill.
	maxPingData = 64
)

// Conn is one Socket.IO connection, server side or client side (same type for both). It is safe for
// concurrent use. Outbound packets go through a bounded queue drained by a writer goroutine that exists only
// while there is something to write (websocket) or by the client's next poll (polling), so an idle
// connection costs no goroutine of its own besides its reader and, on a server, its handler.
type Conn struct {
	id     string
	remote string
	client netip.Addr // the client's address (server side; behind trusted proxies, the forwarded one)
	opened time.Time  // when the transport opened (server side)
	host   string     // server side: the Host the client's opening request named
	srv    *Server    // nil on the client side
	log    *slog.Logger

	maxPayload      int
	maxPending      int
	maxPendingBytes int
	pingInterval    time.Duration
	pingTimeout     time.Duration

	ctx        context.Context
	cancel     context.CancelFunc
	inboxReady chan struct{} // signalled when inbox grows
	wake       chan struct{}

	mu         sync.Mutex
	closed     bool
	closeErr   error
	transport  string
	ws         *websocket.Conn
	queue      [][]byte // encoded Engine.IO packets waiting to be sent
	queueBytes int
	inbox      []Event // received events not yet read, bounded like queue
	inboxBytes int
	writing    bool        // a websocket writer goroutine is draining queue
	polling    bool        // a GET long-poll is in progress
	posting    bool        // a POST is in progress
	probing    bool        // a websocket upgrade probe succeeded; polling answers noop until "5"
	connected  bool        // namespace "/" connected ("40")
	pipelined  bool        // client: DialOptions.Pipeline went out with "40"
	discard    bool        // no handler: events are dropped
	polled     bool        // a polling session has seen a request after its handshake (or an upgrade)
	openTimer  *time.Timer // server: closes the connection if the client does not connect (or poll) in time
	timer      *time.Timer
	sess       Session    // set by Server.Accept; events go to it instead of inbox
	handled    chan error // websocket with Server.Accept: a worker's result for the reader (see workers)
	pingDue    time.Time  // when the timer is meant to fire; earlier firings are stale
	awaitPong  bool

	// sessMu serializes calls into sess: a polling POST and a new websocket reader may overlap during an
	// upgrade, and Closed must not run while an Event does.
	sessMu   sync.Mutex
	sessDone bool // Closed was called
}

func newConn(id, remote string, log *slog.Logger) *Conn {
	c := &Conn{id: id, remote: remote, log: log, inboxReady: make(chan struct{}, 1)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// ID is the Engine.IO session id (server side: the one we assigned; client side: the one we were given).
func (c *Conn) ID() string { return c.id }

// RemoteAddr is the other side's network address (server side: the TCP peer, a proxy if there is one).
func (c *Conn) RemoteAddr() string { return c.remote }

// ClientAddr is the address of the client on the server side: the TCP peer's, or the one a trusted proxy
// reported (Server.ClientAddr). The zero Addr on the client side.
func (c *Conn) ClientAddr() netip.Addr { return c.client }

// Opened is when the transport opened (server side): limits that start at the connection start there, not
// at the namespace connect.
func (c *Conn) Opened() time.Time { return c.opened }

// Host is, on the server side, the HTTP Host (host or host:port) the client
// named in its opening request: how it reached us, e.g. through a proxy. It is
// the client's word, empty when it sent none.
func (c *Conn) Host() string { return c.host }

// Pipelined reports whether Dial sent DialOptions.Pipeline in the flight of the namespace connect.
func (c *Conn) Pipelined() bool { return c.pipelined }

// Done is closed when the connection is gone.
func (c *Conn) Done() <-chan struct{} { return c.ctx.Done() }

// Context is cancelled when the connection is gone.
func (c *Conn) Context() context.Context { return c.ctx }

// Transport reports "polling" or "websocket".
func (c *Conn) Transport() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transport
}

// Err reports why the connection closed (nil while open).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// Emit queues 42["name",args...] without blocking. If the queue is full the connection is closed as a slow
// consumer. After close it returns ErrClosed.
func (c *Conn) Emit(name string, args ...any) error {
	pkt, err := c.encode(name, args)
	if err != nil {
		return err
	}
	return c.enqueue(pkt, true)
}

// TryEmit queues 42["name",args...] like Emit, but when the queue is more than half full (by packets or
// bytes) it drops the event and returns ErrQueueFull instead of closing the connection. It suits events
// other clients cause, such as relayed signals: a flood of them must not cost the receiver its connection,
// and the half left keeps room for the connection's own answers.
func (c *Conn) TryEmit(name string, args ...any) error {
	pkt, err := c.encode(name, args)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if 2*(len(c.queue)+1) > c.maxPending || 2*(c.queueBytes+len(pkt)) > c.maxPendingBytes {
		c.mu.Unlock()
		if c.srv != nil {
			c.srv.recyclePacket(pkt)
		}
		return ErrQueueFull
	}
	c.queue = append(c.queue, pkt)
	c.queueBytes += len(pkt)
	c.kickLocked()
	c.mu.Unlock()
	return nil
}

// encode turns an event into its packet, within the connection's payload limit.
func (c *Conn) encode(name string, args []any) ([]byte, error) {
	var pkt []byte
	if c.srv != nil {
		pkt, _ = appendEventFast(c.srv.packetBuf(), name, args)
	}
	if len(pkt) == 0 {
		var err error
		if pkt, err = encodeEvent(name, args); err != nil {
			return nil, err
		}
	}
	if len(pkt) > c.maxPayload {
		return nil, fmt.Errorf("socketio: event %q is %d bytes, more than the connection's limit of %d", name, len(pkt), c.maxPayload)
	}
	return pkt, nil
}

// ReadEvent returns the next event. Events that arrived before the connection closed are still returned;
// after them it returns io.EOF when the other side closed the connection and ErrClosed when it was closed
// for another reason (locally, ping timeout, protocol error).
func (c *Conn) ReadEvent(ctx context.Context) (Event, error) {
	for {
		c.mu.Lock()
		if len(c.inbox) > 0 {
			ev := c.inbox[0]
			c.inbox[0] = Event{}
			c.inbox = c.inbox[1:]
			if len(c.inbox) == 0 {
				c.inbox = nil // let the backing array go while idle
			}
			c.inboxBytes -= eventSize(ev)
			c.mu.Unlock()
			return ev, nil
		}
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return Event{}, c.readErr()
		}
		select {
		case <-c.inboxReady:
		case <-c.ctx.Done():
		case <-ctx.Done():
			if c.ctx.Err() != nil {
				continue // ctx is often the handler's, cancelled by the close itself
			}
			return Event{}, ctx.Err()
		}
	}
}

func eventSize(ev Event) int {
	n := len(ev.Name)
	for _, a := range ev.Args {
		n += len(a)
	}
	return n
}

func (c *Conn) readErr() error {
	if errors.Is(c.Err(), errRemoteClosed) {
		return io.EOF
	}
	return ErrClosed
}

// Close disconnects gracefully: it sends a Socket.IO disconnect ("41") after what is already queued, so
// socket.io clients do not reconnect automatically, then closes the transport.
func (c *Conn) Close() error {
	c.closeWith(ErrClosed, true)
	return nil
}

// enqueue appends one encoded packet. limited packets (events, pongs) count against the queue bounds;
// the server's own control packets (ping, connect) do not, as at most a few of them are ever pending.
func (c *Conn) enqueue(pkt []byte, limited bool) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if limited && (len(c.queue) >= c.maxPending || c.queueBytes+len(pkt) > c.maxPendingBytes) {
		c.mu.Unlock()
		c.closeWith(ErrSlowConsumer, false)
		c.srv.reportError("slow_consumer")
		return fmt.Errorf("socketio: emit to %s: %w", c.remote, ErrSlowConsumer)
	}
	c.queue = append(c.queue, pkt)
	c.queueBytes += len(pkt)
	c.kickLocked()
	c.mu.Unlock()
	return nil
}

// kickLocked makes the transport send what is queued: it starts the websocket writer or wakes a waiting
// long-poll.
func (c *Conn) kickLocked() {
	if c.transport == transportWebsocket && c.ws != nil {
		if !c.writing {
			c.writing = true
			go c.writeLoop(c.ws)
		}
		return
	}
	c.notifyPoll()
}

func (c *Conn) notifyPoll() {
	if c.wake == nil {
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop drains the queue onto ws and exits when the queue is empty; once the connection is closed it
// writes a close frame and closes the socket, which also ends the reader.
func (c *Conn) writeLoop(ws *websocket.Conn) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.writing = false
			closed := c.closed
			c.mu.Unlock()
			if closed {
				deadline := time.Now().Add(closeGrace)
				_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
				// Closing the socket now could turn into a TCP reset that makes the peer drop our last
				// packets ("41") unread; the reader closes it when the peer's close frame arrives.
				time.AfterFunc(closeGrace, func() { _ = ws.Close() })
			}
			return
		}
		batch := c.queue
		c.queue, c.queueBytes = nil, 0
		c.mu.Unlock()
		for _, p := range batch {
			_ = ws.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := ws.WriteMessage(websocket.TextMessage, p); err != nil {
				c.mu.Lock()
				c.writing = false
				c.queue, c.queueBytes = nil, 0
				c.mu.Unlock()
				c.closeWith(fmt.Errorf("socketio: write to %s: %w", c.remote, err), false)
				_ = ws.Close()
				return
			}
			if c.srv != nil {
				c.srv.recyclePacket(p) // written: nothing refers to it any more
			}
		}
	}
}

// closeWith closes the connection once, for reason. graceful sends a Socket.IO disconnect first when the
// namespace is connected.
func (c *Conn) closeWith(reason error, graceful bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.closeErr = reason
	if graceful && c.connected {
		c.queue = append(c.queue, []byte("41"))
	}
	if c.transport == transportPolling {
		// Tell a polling client right away instead of letting it find out by a 400 on its next poll.
		c.queue = append(c.queue, []byte{engineClose})
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.openTimer != nil {
		c.openTimer.Stop()
	}
	if c.transport == transportWebsocket && c.ws != nil && !c.writing {
		c.writing = true
		go c.writeLoop(c.ws)
	}
	c.notifyPoll()
	sess := c.sess
	c.mu.Unlock()
	c.cancel()
	if sess != nil {
		// On a goroutine of its own: closeWith may run inside the session's own Event (it closed the
		// connection), which holds sessMu until it returns.
		go c.endSession()
	}
	if c.srv != nil {
		c.srv.connClosed(c, reason)
	}
	if !errors.Is(reason, ErrClosed) && !errors.Is(reason, errRemoteClosed) && !errors.Is(reason, errShutdown) {
		c.log.Debug("socket.io connection closed", "sid", c.id, "remote", c.remote, "reason", reason)
	}
}

// endSession calls the session's Closed once and releases the server's count of it.
func (c *Conn) endSession() {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if c.sessDone {
		return
	}
	c.sessDone = true
	c.sess.Closed()
	c.srv.wg.Done()
}

// handlePacket processes one inbound Engine.IO packet. A returned error is a protocol violation; the caller
// closes the connection.
func (c *Conn) handlePacket(p EnginePacket) error {
	if p.Binary {
		// Binary attachments are not part of this protocol; skip them rather than fail a client.
		c.srv.reportError("binary")
		return nil
	}
	switch p.Type {
	case engineClose:
		c.closeWith(errRemoteClosed, false)
		return nil
	case enginePing:
		if len(p.Data) > maxPingData {
			return fmt.Errorf("ping with %d bytes of data, more than the %d allowed", len(p.Data), maxPingData)
		}
		if c.srv == nil {
			c.resetWatchdog()
		}
		// Counted like events: a peer that pings without reading the pongs fills its own queue.
		return c.enqueue(append([]byte{enginePong}, p.Data...), true)
	case enginePong:
		if c.srv != nil {
			c.pongReceived()
		}
		return nil
	case engineMessage:
		return c.handleSocket(p.Data)
	case engineNoop, engineUpgrade:
		return nil
	default:
		return fmt.Errorf("unexpected engine.io packet type %q", p.Type)
	}
}

// handleSocket processes the Socket.IO packet carried in an Engine.IO message.
func (c *Conn) handleSocket(data string) error {
	sp, err := ParseSocketPacket(data)
	if err != nil {
		return err
	}
	if c.srv == nil {
		return c.handleSocketClient(sp)
	}
	switch sp.Type {
	case socketConnect:
		if sp.Namespace != "/" {
			msg, _ := json.Marshal(map[string]string{"message": "Invalid namespace"})
			return c.enqueue(fmt.Appendf(nil, "44%s,%s", sp.Namespace, msg), false)
		}
		c.mu.Lock()
		already := c.connected
		c.connected = true
		if c.openTimer != nil {
			c.openTimer.Stop()
		}
		c.mu.Unlock()
		if already {
			return nil
		}
		if err := c.enqueue(fmt.Appendf(nil, `40{"sid":%q}`, c.id), false); err != nil {
			return nil // closed meanwhile
		}
		c.srv.startHandler(c)
		return nil
	case socketDisconnect:
		if sp.Namespace == "/" {
			c.closeWith(errRemoteClosed, false)
		}
		return nil
	case socketEvent:
		return c.deliver(sp)
	case socketAck, socketBinaryEvent, socketBinaryAck:
		c.srv.reportError("unsupported_packet")
		return nil
	default:
		return fmt.Errorf("socket.io: a client may not send packet type %d", sp.Type)
	}
}

func (c *Conn) handleSocketClient(sp SocketPacket) error {
	switch sp.Type {
	case socketDisconnect:
		if sp.Namespace == "/" {
			c.closeWith(errRemoteClosed, false)
		}
		return nil
	case socketEvent:
		return c.deliver(sp)
	case socketConnect, socketAck, socketBinaryEvent, socketBinaryAck, socketConnectError:
		return nil
	default:
		return fmt.Errorf("socket.io: unexpected packet type %d", sp.Type)
	}
}

// deliver hands an event to ReadEvent, blocking until it is read or the connection closes.
func (c *Conn) deliver(sp SocketPacket) error {
	if sp.Namespace != "/" {
		return nil // events for namespaces we refused are ignored, as socket.io does
	}
	c.mu.Lock()
	ok := c.connected && !c.discard
	c.mu.Unlock()
	if !ok {
		return nil
	}
	ev, err := parseEvent(sp.Data) // valid JSON (ParseSocketPacket checked), and ours
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	if sess := c.sess; sess != nil {
		// A Session handles the event right here; it promises not to block.
		c.mu.Unlock()
		c.sessMu.Lock()
		if !c.sessDone {
			sess.Event(ev)
		}
		c.sessMu.Unlock()
		return nil
	}
	// Queue instead of blocking the reader: pings and closes must still be seen while the application is
	// busy. A peer that sends faster than the application reads is cut off, like a slow consumer.
	size := eventSize(ev)
	if len(c.inbox) >= c.maxPending || c.inboxBytes+size > c.maxPendingBytes {
		c.mu.Unlock()
		c.srv.reportError("inbound_overflow")
		c.closeWith(fmt.Errorf("socketio: %s sends events faster than they are read: %w", c.remote, ErrInboundOverflow), false)
		return nil
	}
	c.inbox = append(c.inbox, ev)
	c.inboxBytes += size
	c.mu.Unlock()
	select {
	case c.inboxReady <- struct{}{}:
	default:
	}
	return nil
}

// startOpenTimer arms the check that the client connects the namespace within the server's ConnectTimeout
// of the transport's opening (and, polling, polls within UnpolledTimeout); first is when to look first.
func (c *Conn) startOpenTimer(first time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && !c.connected {
		c.openTimer = time.AfterFunc(first, c.openTick)
	}
}

func (c *Conn) openTick() {
	c.mu.Lock()
	if c.closed || c.connected {
		c.mu.Unlock()
		return
	}
	age := time.Since(c.opened)
	var kind string
	var reason error
	switch {
	case c.transport == transportPolling && !c.polled && age >= c.srv.UnpolledTimeout:
		kind, reason = "unpolled", fmt.Errorf("socketio: polling session never polled within %v: %w", c.srv.UnpolledTimeout, ErrConnectTimeout)
	case age >= c.srv.ConnectTimeout:
		kind, reason = "connect_timeout", fmt.Errorf("socketio: namespace not connected within %v: %w", c.srv.ConnectTimeout, ErrConnectTimeout)
	default:
		c.openTimer.Reset(c.srv.ConnectTimeout - age)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.srv.reportError(kind)
	c.closeWith(reason, false)
}

// startPing arms the server-side heartbeat: a ping every pingInterval, close when no pong within
// pingTimeout. One timer per connection, no goroutine.
func (c *Conn) startPing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pingDue = time.Now().Add(c.pingInterval)
	c.timer = time.AfterFunc(c.pingInterval, c.pingTick)
}

func (c *Conn) pingTick() {
	c.mu.Lock()
	if c.closed || time.Now().Before(c.pingDue) {
		c.mu.Unlock() // stale firing: the timer was re-armed meanwhile
		return
	}
	if c.awaitPong {
		c.mu.Unlock()
		c.srv.reportError("ping_timeout")
		c.closeWith(ErrPingTimeout, false)
		return
	}
	c.awaitPong = true
	c.pingDue = time.Now().Add(c.pingTimeout)
	c.timer.Reset(c.pingTimeout)
	c.queue = append(c.queue, []byte{enginePing})
	c.queueBytes++
	c.kickLocked()
	c.mu.Unlock()
}

func (c *Conn) pongReceived() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.awaitPong || c.closed {
		return
	}
	c.awaitPong = false
	c.pingDue = time.Now().Add(c.pingInterval)
	c.timer.Reset(c.pingInterval)
}

// resetWatchdog (client side) re-arms the timer that closes the connection when the server's pings stop.
func (c *Conn) resetWatchdog() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	d := c.pingInterval + c.pingTimeout
	c.pingDue = time.Now().Add(d)
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.watchdogFired)
		return
	}
	c.timer.Reset(d)
}

func (c *Conn) watchdogFired() {
	c.mu.Lock()
	stale := time.Now().Before(c.pingDue)
	c.mu.Unlock()
	if !stale {
		c.closeWith(ErrPingTimeout, false)
	}
}

// readLoop reads websocket frames until the socket fails or the connection closes.
func (c *Conn) readLoop(ws *websocket.Conn) {
	for {
		mt, data, err := c.readMessage(ws)
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.closeWith(errRemoteClosed, false)
			} else if errors.Is(err, websocket.ErrReadLimit) {
				c.srv.reportError("payload_too_large")
				c.closeWith(fmt.Errorf("socketio: frame from %s larger than %d bytes: %w", c.remote, c.maxPayload, err), false)
			} else {
				c.closeWith(fmt.Errorf("socketio: read from %s: %w", c.remote, err), false)
			}
			_ = ws.Close()
			return
		}
		if c.ctx.Err() != nil {
			continue // closing: drain until the peer's close frame or the grace timer
		}
		switch {
		case mt == websocket.BinaryMessage:
			err = c.handlePacket(EnginePacket{Type: engineMessage, Binary: true})
		case c.handled != nil && len(data) > 0 && data[0] == engineMessage:
			err = c.srv.work.handle(c, data) // see workers: keeps this goroutine's stack small
		default:
			err = c.handleMessage(data)
		}
		if err != nil {
			c.protocolError(err)
			return
		}
	}
}

// readMessage reads one websocket message. On a server it reads into a buffer shared through a pool and
// copies the message out once, instead of ReadMessage's growing buffer and its copy to a string.
func (c *Conn) readMessage(ws *websocket.Conn) (int, string, error) {
	if c.srv == nil {
		mt, data, err := ws.ReadMessage()
		return mt, string(data), err
	}
	mt, r, err := ws.NextReader()
	if err != nil {
		return mt, "", err
	}
	bp, _ := c.srv.readBufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, readBufSize)
		bp = &b
	}
	buf := (*bp)[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, len(buf)) // bounded by the read limit
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return mt, "", err
		}
	}
	msg := string(buf)
	if cap(buf) <= maxPooledReadBuf {
		*bp = buf[:0]
		c.srv.readBufs.Put(bp)
	}
	return mt, msg, nil
}

// handleMessage processes one inbound websocket text message.
func (c *Conn) handleMessage(data string) error {
	p, err := ParseEnginePacket(data)
	if err != nil {
		return err
	}
	return c.handlePacket(p)
}

// protocolError closes the connection because the other side broke the protocol.
func (c *Conn) protocolError(err error) {
	c.srv.reportError("protocol")
	c.log.Info("socket.io protocol error, closing connection", "remote", c.remote, "sid", c.id, "err", err)
	c.closeWith(fmt.Errorf("socketio: protocol error from %s: %w", c.remote, err), false)
}

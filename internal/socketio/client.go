package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/p2pcdn/p2pcdn/internal/timeline"
)

// DialOptions configures Dial. The zero value (or nil) is usable.
type DialOptions struct {
	Header           http.Header
	HandshakeTimeout time.Duration // default 10s, covers the WebSocket and the namespace handshakes
	MaxPayload       int           // largest frame accepted from the server, default 1_000_000
	MaxPending       int           // queued outbound packets, default 256
	Logger           *slog.Logger
	// NetDialContext, if set, opens the TCP connection (e.g. from a chosen local address).
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Pipeline lists events to send in the same flight as the namespace connect ("40"), before the
	// server's answer, when the server's open packet says it takes them ("p2pcdn" of 1 or more, see
	// docs/extensions.md): a round trip saved. Other servers (socket.io's closes a client whose events
	// come before its namespace is connected) get nothing early; Conn.Pipelined tells which happened.
	Pipeline []OutEvent
}

// OutEvent is an event to send: 42["Name",Args...].
type OutEvent struct {
	Name string
	Args []any
}

// Dial opens a client connection over the WebSocket transport (EIO=4&transport=websocket), connects the
// default namespace and waits for "40{...}". rawURL may be ws://host:port, http://host:port or host:port,
// with or without the "/socket.io/" path. Pings from the server are answered; if they stop for longer than
// pingInterval+pingTimeout the connection closes. ctx bounds only the handshake; the connection outlives it
// and ends with Close.
func Dial(ctx context.Context, rawURL string, opt *DialOptions) (*Conn, error) {
	var o DialOptions
	if opt != nil {
		o = *opt
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = defaultMaxPayload
	}
	if o.MaxPending <= 0 {
		o.MaxPending = defaultMaxPending
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	u, err := engineURL(rawURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.HandshakeTimeout)
	defer cancel()
	tl := timeline.FromContext(ctx)
	d := websocket.Dialer{
		HandshakeTimeout: o.HandshakeTimeout,
		ReadBufferSize:   1024,
		WriteBufferSize:  4096,
		WriteBufferPool:  &sync.Pool{},
		NetDialContext:   markDial(tl, o.NetDialContext),
	}
	ws, resp, err := d.DialContext(ctx, u, o.Header)
	if err != nil {
		// The caller names the server; say only what went wrong.
		if resp != nil {
			return nil, fmt.Errorf("the server answered HTTP %s instead of a Socket.IO WebSocket: %w", resp.Status, err)
		}
		return nil, dialCause(err, o.HandshakeTimeout.String())
	}
	tl.Mark("mediator: WebSocket open")
	ws.SetReadLimit(int64(o.MaxPayload))
	// The handshake reads below block; abandon them when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = ws.Close() })
	c, err := clientHandshake(ws, &o, tl)
	if !stop() || err != nil {
		_ = ws.Close()
		if err == nil || ctx.Err() != nil {
			err = fmt.Errorf("no Socket.IO handshake within %s: %w", o.HandshakeTimeout, context.Cause(ctx))
		}
		return nil, err
	}
	c.resetWatchdog()
	go c.readLoop(ws)
	return c, nil
}

// markDial wraps dial (nil: a plain net.Dialer) to mark the TCP connection on tl.
func markDial(tl *timeline.Timeline, dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if tl == nil {
		return dial
	}
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err == nil {
			tl.Mark("mediator: TCP connected")
		}
		return c, err
	}
}

// clientHandshake reads the open packet, sends "40" and waits for the namespace answer.
func clientHandshake(ws *websocket.Conn, o *DialOptions, tl *timeline.Timeline) (*Conn, error) {
	remote := ws.RemoteAddr().String()
	_, data, err := ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("socketio: read open packet from %s: %w", remote, err)
	}
	if len(data) == 0 || data[0] != engineOpen {
		return nil, fmt.Errorf("socketio: expected an open packet from %s, got %.40q", remote, data)
	}
	var open struct {
		Sid          string `json:"sid"`
		PingInterval int64  `json:"pingInterval"`
		PingTimeout  int64  `json:"pingTimeout"`
		MaxPayload   int    `json:"maxPayload"`
		P2PCDN       int    `json:"p2pcdn"` // ours: takes events in the flight of "40"
	}
	if err := json.Unmarshal(data[1:], &open); err != nil || open.Sid == "" || open.PingInterval <= 0 || open.PingTimeout <= 0 {
		return nil, fmt.Errorf("socketio: malformed open packet from %s: %.80q", remote, data)
	}
	tl.Mark("mediator: Engine.IO open")
	c := newConn(open.Sid, remote, o.Logger)
	c.transport = transportWebsocket
	c.ws = ws
	c.maxPending = o.MaxPending
	c.maxPayload = o.MaxPayload
	if open.MaxPayload > 0 && open.MaxPayload < c.maxPayload {
		c.maxPayload = open.MaxPayload // the server's limit on what we send
	}
	c.maxPendingBytes = 2 * c.maxPayload
	c.pingInterval = time.Duration(open.PingInterval) * time.Millisecond
	c.pingTimeout = time.Duration(open.PingTimeout) * time.Millisecond
	if err := ws.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		return nil, fmt.Errorf("socketio: connect namespace on %s: %w", remote, err)
	}
	if open.P2PCDN >= 1 && len(o.Pipeline) > 0 {
		for _, ev := range o.Pipeline {
			pkt, err := encodeEvent(ev.Name, ev.Args)
			if err != nil {
				return nil, err
			}
			if len(pkt) > c.maxPayload {
				return nil, fmt.Errorf("socketio: event %q is %d bytes, more than the connection's limit of %d", ev.Name, len(pkt), c.maxPayload)
			}
			if err := ws.WriteMessage(websocket.TextMessage, pkt); err != nil {
				return nil, fmt.Errorf("socketio: send %s to %s: %w", ev.Name, remote, err)
			}
		}
		c.pipelined = true
		tl.Mark("mediator: namespace connect and events sent in one flight")
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return nil, fmt.Errorf("socketio: wait for namespace answer from %s: %w", remote, err)
		}
		p, err := ParseEnginePacket(string(data))
		if err != nil {
			return nil, fmt.Errorf("socketio: handshake with %s: %w", remote, err)
		}
		switch p.Type {
		case enginePing:
			if err := ws.WriteMessage(websocket.TextMessage, []byte{enginePong}); err != nil {
				return nil, fmt.Errorf("socketio: answer ping from %s: %w", remote, err)
			}
			continue
		case engineNoop:
			continue
		case engineMessage:
		default:
			return nil, fmt.Errorf("socketio: unexpected packet %.40q from %s during handshake", data, remote)
		}
		sp, err := ParseSocketPacket(p.Data)
		if err != nil {
			return nil, fmt.Errorf("socketio: handshake with %s: %w", remote, err)
		}
		if sp.Namespace != "/" {
			continue
		}
		switch sp.Type {
		case socketConnect:
			tl.Mark("mediator: Socket.IO connected")
			c.connected = true
			return c, nil
		case socketConnectError:
			return nil, fmt.Errorf("socketio: %s refused the connection: %s", remote, sp.Data)
		default:
			return nil, fmt.Errorf("socketio: unexpected packet %.40q from %s during handshake", data, remote)
		}
	}
}

// engineURL turns ws://h:p, http://h:p or h:p (with or without a path) into the Engine.IO WebSocket URL.
func engineURL(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "ws://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it would quote raw again
		}
		return "", fmt.Errorf("bad mediator address %q: %w", raw, err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("bad mediator address %q: the scheme must be ws, wss, http or https", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("bad mediator address %q: no host", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/socket.io/"
	}
	q := u.Query()
	q.Set("EIO", "4")
	q.Set("transport", "websocket")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

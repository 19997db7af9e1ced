package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestDialServerEventsBothWays(t *testing.T) {
	seen := make(chan Event, 16)
	s := &Server{Handler: echoHandler(seen)}
	base := startServer(t, s)
	c := dial(t, base)
	if c.Transport() != "websocket" {
		t.Fatalf("transport %q", c.Transport())
	}
	welcome := expectEvent(t, c, "welcome")
	if got := argString(t, welcome, 0); got != c.ID() {
		t.Fatalf("server sid %q, client sid %q", got, c.ID())
	}
	payload := map[string]any{"sdp": "v=0\r\n<&>", "n": 3}
	if err := c.Emit("echo", "hash", payload, json.RawMessage(`[1,2]`)); err != nil {
		t.Fatal(err)
	}
	ev := expectEvent(t, c, "echoed")
	if len(ev.Args) != 3 || string(ev.Args[2]) != "[1,2]" || argString(t, ev, 0) != "hash" {
		t.Fatalf("echoed %+v", ev)
	}
	var back map[string]any
	if err := json.Unmarshal(ev.Args[1], &back); err != nil || back["sdp"] != "v=0\r\n<&>" {
		t.Fatalf("payload came back as %s (%v)", ev.Args[1], err)
	}
	if got := <-seen; got.Name != "echo" {
		t.Fatalf("server saw %q", got.Name)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
}

func TestDialURLForms(t *testing.T) {
	base := startServer(t, &Server{Handler: echoHandler(nil)})
	host := strings.TrimPrefix(base, "http://")
	for _, u := range []string{base, host, "ws://" + host, "ws://" + host + "/socket.io/", base + "/"} {
		c := dial(t, u)
		checkEcho(t, c, u)
		_ = c.Close()
	}
	if _, err := Dial(context.Background(), "ftp://"+host, nil); err == nil {
		t.Fatal("ftp scheme accepted")
	}
}

func TestClientCloseEndsHandler(t *testing.T) {
	handlerErr := make(chan error, 1)
	s := &Server{Handler: func(ctx context.Context, c *Conn) {
		_, err := c.ReadEvent(ctx)
		handlerErr <- err
	}}
	base := startServer(t, s)
	c := dial(t, base)
	waitFor(t, "connection registered", func() bool { return s.Len() == 1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-handlerErr:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("handler ReadEvent error %v, want io.EOF", err)
		}
	case <-time.After(testWait):
		t.Fatal("handler did not see the close")
	}
	waitFor(t, "Len 0", func() bool { return s.Len() == 0 })
	if err := c.Emit("x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Emit after close: %v", err)
	}
}

func TestHandlerReturnDisconnectsClient(t *testing.T) {
	base := startServer(t, &Server{Handler: echoHandler(nil)})
	c := dial(t, base)
	if err := c.Emit("quit"); err != nil {
		t.Fatal(err)
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		_, err := c.ReadEvent(ctx)
		cancel()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("ReadEvent after server disconnect: %v, want io.EOF", err)
			}
			break
		}
	}
	waitDone(t, c, "client conn done")
}

func TestServerPingTimeout(t *testing.T) {
	var errs errCounter
	s := &Server{Handler: echoHandler(nil), PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond, OnError: errs.hook}
	base := startServer(t, s)
	ws := rawWS(t, base, "")
	if open := wsRead(t, ws); !strings.HasPrefix(open, `0{"sid":`) || !strings.Contains(open, `"upgrades":[]`) {
		t.Fatalf("open packet %q", open)
	}
	wsWrite(t, ws, "40")
	// Never answer pings: the server must ping and then close.
	got := wsClosed(t, ws)
	pinged := false
	for _, m := range got {
		pinged = pinged || m == "2"
	}
	if !pinged {
		t.Fatalf("server closed without pinging first: %q", got)
	}
	if errs.get("ping_timeout") == 0 {
		t.Fatal("no ping_timeout reported")
	}
	waitFor(t, "Len 0", func() bool { return s.Len() == 0 })
}

func TestDialAnswersPings(t *testing.T) {
	var errs errCounter
	s := &Server{Handler: echoHandler(nil), PingInterval: 10 * time.Millisecond, PingTimeout: 5 * time.Second, OnError: errs.hook}
	base := startServer(t, s)
	c := dial(t, base)
	time.Sleep(300 * time.Millisecond) // many ping cycles
	checkEcho(t, c, "still alive")
	if n := errs.get("ping_timeout"); n != 0 {
		t.Fatalf("%d ping timeouts", n)
	}
}

func TestDialWatchdogClosesWhenPingsStop(t *testing.T) {
	// A server that completes the handshake and then goes silent.
	up := websocket.Upgrader{}
	release := make(chan struct{})
	defer close(release)
	mux := http.NewServeMux()
	mux.HandleFunc("/socket.io/", func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`0{"sid":"silent","upgrades":[],"pingInterval":30,"pingTimeout":30,"maxPayload":1000}`))
		_, _, _ = ws.ReadMessage()
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`40{"sid":"silent"}`))
		<-release
	})
	base := startServerMux(t, mux)
	c := dial(t, base)
	if c.ID() != "silent" {
		t.Fatalf("ID %q", c.ID())
	}
	waitDone(t, c, "watchdog")
	if !errors.Is(c.Err(), ErrPingTimeout) {
		t.Fatalf("Err = %v, want ping timeout", c.Err())
	}
}

func TestDialRefusedNamespace(t *testing.T) {
	mux := http.NewServeMux()
	up := websocket.Upgrader{}
	mux.HandleFunc("/socket.io/", func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`0{"sid":"x","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000}`))
		_, _, _ = ws.ReadMessage()
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`44{"message":"Not authorized"}`))
		_, _, _ = ws.ReadMessage()
	})
	base := startServerMux(t, mux)
	_, err := Dial(context.Background(), base, &DialOptions{HandshakeTimeout: testWait})
	if err == nil || !strings.Contains(err.Error(), "Not authorized") {
		t.Fatalf("Dial error %v, want the server's refusal", err)
	}
}

func TestShutdownClosesEverything(t *testing.T) {
	s := &Server{Handler: echoHandler(nil)}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", s)
	base := startServerMux(t, mux)
	var conns []*Conn
	for i := 0; i < 5; i++ {
		conns = append(conns, dial(t, base))
	}
	p := newPoller(t, base)
	p.post("40")
	p.until("40")
	waitFor(t, "6 connections", func() bool { return s.Len() == 6 })
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		waitDone(t, c, "client closed by shutdown")
	}
	if s.Len() != 0 {
		t.Fatalf("Len after shutdown = %d", s.Len())
	}
	if pkts := p.get(); pkts[len(pkts)-1] != "1" {
		t.Fatalf("polling client got %q after shutdown, want close packet", pkts)
	}
	if _, err := Dial(ctx, base, nil); err == nil {
		t.Fatal("Dial after shutdown succeeded")
	}
}

func TestPollingSession(t *testing.T) {
	seen := make(chan Event, 64)
	s := &Server{Handler: echoHandler(seen)}
	base := startServer(t, s)

	// Handshake answers with CORS and a complete open packet.
	resp, err := http.Get(base + "/socket.io/?EIO=4&transport=polling&b64=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("CORS header %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	var open struct {
		Sid          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int      `json:"pingInterval"`
		PingTimeout  int      `json:"pingTimeout"`
		MaxPayload   int      `json:"maxPayload"`
	}
	if err := json.Unmarshal(body[1:], &open); err != nil || body[0] != '0' {
		t.Fatalf("open packet %q: %v", body, err)
	}
	if len(open.Upgrades) != 1 || open.Upgrades[0] != "websocket" || open.PingInterval != 25000 || open.PingTimeout != 20000 || open.MaxPayload != 1_000_000 {
		t.Fatalf("open packet %+v", open)
	}

	p := newPoller(t, base)
	p.url += "&b64=1" // the prototype's client adds it
	// Several packets in one POST, as socket.io-client batches them.
	p.post("40\x1e42[\"echo\",\"one\"]\x1e42[\"echo\",\"two\"]")
	if pkt := p.until("40"); pkt != `40{"sid":"`+p.sid+`"}` {
		t.Fatalf("connect answer %q", pkt)
	}
	var echoed []string
	for len(echoed) < 2 {
		echoed = append(echoed, p.until(`42["echoed"`))
	}
	if echoed[0] != `42["echoed","one"]` || echoed[1] != `42["echoed","two"]` {
		t.Fatalf("echoed %q", echoed)
	}
	if (<-seen).Name != "echo" {
		t.Fatal("server handler did not see the echo")
	}
	// Client disconnect ends the session.
	p.post("41")
	// Only the bare handshake session from the start is left.
	waitFor(t, "Len 1", func() bool { return s.Len() == 1 })
}

func TestPollingPreflightAndErrors(t *testing.T) {
	var errs errCounter
	s := &Server{Handler: echoHandler(nil), OnError: errs.hook}
	base := startServer(t, s)
	p := &poller{t: t}

	req, _ := http.NewRequest(http.MethodOptions, base+"/socket.io/?EIO=4&transport=polling", nil)
	req.Header.Set("Origin", "http://example.test")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") || resp.Header.Get("Access-Control-Allow-Headers") != "content-type" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	cases := []struct {
		method, query, body string
		status              int
		want                string
	}{
		{"GET", "EIO=4&transport=polling&sid=nope", "", 400, `{"code":1,"message":"Session ID unknown"}`},
		{"POST", "EIO=4&transport=polling&sid=nope", "40", 400, `{"code":1,"message":"Session ID unknown"}`},
		{"GET", "EIO=3&transport=polling", "", 400, `{"code":5,"message":"Unsupported protocol version"}`},
		{"GET", "EIO=4&transport=carrier-pigeon", "", 400, `{"code":0,"message":"Transport unknown"}`},
		{"POST", "EIO=4&transport=polling", "40", 400, `{"code":2,"message":"Bad handshake method"}`},
		{"GET", "EIO=4&transport=websocket", "", 400, `{"code":3,"message":"Bad request"}`}, // not an upgrade request
	}
	for _, tc := range cases {
		status, body := p.do(tc.method, base+"/socket.io/?"+tc.query, tc.body)
		if status != tc.status || body != tc.want {
			t.Errorf("%s ?%s: %d %s, want %d %s", tc.method, tc.query, status, body, tc.status, tc.want)
		}
	}
	if errs.get("unknown_sid") != 2 {
		t.Errorf("unknown_sid reported %d times, want 2", errs.get("unknown_sid"))
	}
}

func TestPollingOversizedPost(t *testing.T) {
	var errs errCounter
	s := &Server{Handler: echoHandler(nil), MaxPayload: 1000, OnError: errs.hook}
	base := startServer(t, s)
	p := newPoller(t, base)
	p.post("40")
	p.until("40")
	status, _ := p.do(http.MethodPost, p.sidURL(), `42["echo","`+strings.Repeat("x", 2000)+`"]`)
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized POST: status %d", status)
	}
	if errs.get("payload_too_large") != 1 {
		t.Fatal("payload_too_large not reported")
	}
	waitFor(t, "Len 0", func() bool { return s.Len() == 0 })
}

func TestPollingConcurrentGetIsProtocolError(t *testing.T) {
	s := &Server{Handler: echoHandler(nil)}
	base := startServer(t, s)
	p := newPoller(t, base)
	p.post("40")
	p.until("40")
	first := make(chan []string, 1)
	go func() {
		status, body := p.do(http.MethodGet, p.sidURL(), "")
		if status != 200 {
			body = "status " + body
		}
		first <- strings.Split(body, "\x1e")
	}()
	// Wait until the first poll is parked, then send a second one.
	c := s.conns[p.sid]
	waitFor(t, "first poll parked", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.polling })
	status, body := p.do(http.MethodGet, p.sidURL(), "")
	if status != http.StatusBadRequest || !strings.Contains(body, `"code":3`) {
		t.Fatalf("second poll: %d %q", status, body)
	}
	got := <-first
	if got[len(got)-1] != "1" {
		t.Fatalf("first poll got %q, want the close packet", got)
	}
	waitFor(t, "Len 0", func() bool { return s.Len() == 0 })
}

func TestPollingSlowConsumer(t *testing.T) {
	var errs errCounter
	emitErr := make(chan error, 1)
	s := &Server{MaxPending: 8, OnError: errs.hook, Handler: func(ctx context.Context, c *Conn) {
		// The client never polls: the queue fills and the connection must close.
		for i := 0; ; i++ {
			if err := c.Emit("flood", i); err != nil {
				emitErr <- err
				return
			}
		}
	}}
	base := startServer(t, s)
	p := newPoller(t, base)
	p.post("40")
	select {
	case err := <-emitErr:
		if !errors.Is(err, ErrSlowConsumer) {
			t.Fatalf("Emit error %v, want slow consumer", err)
		}
	case <-time.After(testWait):
		t.Fatal("Emit never failed")
	}
	if errs.get("slow_consumer") != 1 {
		t.Fatal("slow_consumer not reported")
	}
	waitFor(t, "Len 0", func() bool { return s.Len() == 0 })
}

func TestEmitTooLarge(t *testing.T) {
	done := make(chan error, 1)
	s := &Server{MaxPayload: 100, Handler: func(ctx context.Context, c *Conn) {
		done <- c.Emit("big", strings.Repeat("x", 200))
		_ = c.Emit("small", "ok")
		<-ctx.Done()
	}}
	base := startServer(t, s)
	c := dial(t, base)
	if err := <-done; err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("oversized Emit: %v, want a size error", err)
	}
	if ev := readEvent(t, c); ev.Name != "small" {
		t.Fatalf("got %q, want the small event after the refused big one", ev.Name)
	}
}

func TestPollingUpgradeToWebsocket(t *testing.T) {
	var mu sync.Mutex
	var server *Conn
	s := &Server{Handler: func(ctx context.Context, c *Conn) {
		mu.Lock()
		server = c
		mu.Unlock()
		echoHandler(nil)(ctx, c)
	}}
	base := startServer(t, s)
	p := newPoller(t, base)
	p.post("40")
	p.until("42[\"welcome\"")
	// Park a poll, then probe over websocket.
	pending := make(chan []string, 1)
	go func() { pending <- p.get() }()
	c := s.conns[p.sid]
	waitFor(t, "poll parked", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.polling })
	ws := rawWS(t, base, "&sid="+p.sid)
	wsWrite(t, ws, "2probe")
	if got := wsRead(t, ws); got != "3probe" {
		t.Fatalf("probe answer %q", got)
	}
	if got := <-pending; len(got) != 1 || got[0] != "6" {
		t.Fatalf("pending poll got %q, want noop", got)
	}
	wsWrite(t, ws, "5")
	wsWrite(t, ws, `42["echo","over ws"]`)
	if got := wsRead(t, ws); got != `42["echoed","over ws"]` {
		t.Fatalf("after upgrade got %q", got)
	}
	mu.Lock()
	tr := server.Transport()
	mu.Unlock()
	if tr != "websocket" {
		t.Fatalf("Transport() = %q after upgrade", tr)
	}
	// Polling on an upgraded session is refused.
	if status, _ := p.do(http.MethodGet, p.sidURL(), ""); status != http.StatusBadRequest {
		t.Fatalf("poll after upgrade: %d", status)
	}
	// A second upgrade of the same session is refused too.
	u := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket&sid=" + p.sid
	if _, resp, err := websocket.DefaultDialer.Dial(u, nil); err == nil || resp == nil || resp.StatusCode != 400 {
		t.Fatalf("second upgrade: %v", err)
	}
}

func TestInvalidNamespace(t *testing.T) {
	base := startServer(t, &Server{Handler: echoHandler(nil)})
	ws := rawWS(t, base, "")
	wsRead(t, ws)
	wsWrite(t, ws, `42["echo","before connect is ignored"]`)
	wsWrite(t, ws, "40/admin,")
	if got := wsRead(t, ws); got != `44/admin,{"message":"Invalid namespace"}` {
		t.Fatalf("got %q", got)
	}
	wsWrite(t, ws, "40")
	if got := wsRead(t, ws); !strings.HasPrefix(got, `40{"sid":"`) {
		t.Fatalf("got %q", got)
	}
	if got := wsRead(t, ws); !strings.HasPrefix(got, `42["welcome"`) {
		t.Fatalf("got %q", got)
	}
	wsWrite(t, ws, `42["echo","after"]`)
	if got := wsRead(t, ws); got != `42["echoed","after"]` {
		t.Fatalf("got %q", got)
	}
}

// Hostile input on some connections must not disturb a well-behaved client.
func TestHostileInputKeepsServing(t *testing.T) {
	var errs errCounter
	s := &Server{Handler: echoHandler(nil), MaxPayload: 4096, OnError: errs.hook}
	base := startServer(t, s)
	good := dial(t, base)
	checkEcho(t, good, "before")

	bad := []struct {
		name   string
		frames []string
	}{
		{"unknown engine type", []string{"40", "9hello"}},
		{"empty frame", []string{"40", ""}},
		{"garbage socket packet", []string{"40", "4x"}},
		{"invalid json", []string{"40", `42["echo",`}},
		{"event name not a string", []string{"40", `42[1,2]`}},
		{"oversized frame", []string{"40", `42["echo","` + strings.Repeat("y", 5000) + `"]`}},
		{"client open packet", []string{"0{}"}},
		{"connect error from client", []string{"40", `44{"message":"x"}`}},
	}
	for _, tc := range bad {
		ws := rawWS(t, base, "")
		wsRead(t, ws)
		for _, f := range tc.frames {
			if err := ws.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
				t.Fatalf("%s: write: %v", tc.name, err)
			}
		}
		wsClosed(t, ws)
	}
	// Binary frames and binary events are skipped, not fatal.
	ws := rawWS(t, base, "")
	wsRead(t, ws)
	wsWrite(t, ws, "40")
	_ = ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	wsWrite(t, ws, `451-["echo",{"_placeholder":true,"num":0}]`)
	wsWrite(t, ws, `42["echo","still here"]`)
	for {
		if got := wsRead(t, ws); got == `42["echoed","still here"]` {
			break
		}
	}
	if errs.get("binary") == 0 || errs.get("unsupported_packet") == 0 {
		t.Fatalf("binary input not reported: %v", errs.n)
	}

	// Floods: many handshakes and unknown sids.
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &poller{t: t}
			p.do(http.MethodGet, base+"/socket.io/?EIO=4&transport=polling", "")
			p.do(http.MethodPost, base+"/socket.io/?EIO=4&transport=polling&sid=bogus", "40")
			p.do(http.MethodPost, base+"/socket.io/?EIO=4&transport=polling&sid=bogus", strings.Repeat("\x1e", 100))
		}()
	}
	wg.Wait()
	checkEcho(t, good, "after")
	if errs.get("protocol") < 6 || errs.get("payload_too_large") != 1 {
		t.Fatalf("errors reported: %v", errs.n)
	}
}

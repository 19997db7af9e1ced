package socketio

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Attacks on the transport (issue 11), each bounded in count and time and on loopback only. Each test
// asserts the bound the attack used to break, and that a well-behaved client still gets served.

// queued sums what the server holds in outbound queues, over every session it knows.
func queued(s *Server) (packets, bytes int) {
	s.mu.Lock()
	conns := make([]*Conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		packets += len(c.queue)
		bytes += c.queueBytes
		c.mu.Unlock()
	}
	return packets, bytes
}

func sessions(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// fromAddr is an HTTP client whose connections leave from local address ip (127.0.0.x): loopback tests
// stand for distinct clients with distinct loopback addresses.
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: testWait}
}

func wsFrom(t testing.TB, base, ip string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).Dial(network, addr)
	}}
	u := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	ws, resp, err := d.Dial(u, nil)
	if ws != nil {
		t.Cleanup(func() { _ = ws.Close() })
	}
	return ws, resp, err
}

// Attack 1, polling: POSTs of pings with large payloads, never polled, used to queue every pong in full
// outside the outbound bounds (1,000 POSTs of 1 MB: 1.6 GB). Now a ping with more than a probe's data is
// a protocol error, and pongs count against the queue bounds.
func TestAttackPingPayloadsPolling(t *testing.T) {
	errs := &errCounter{}
	s := &Server{Handler: echoHandler(nil), OnError: errs.hook}
	base := startServer(t, s)
	big := "2" + strings.Repeat("x", 900_000)
	for i := 0; i < 20; i++ {
		p := newPoller(t, base)
		p.post("40")
		status, _ := p.do(http.MethodPost, p.sidURL(), big)
		if status == http.StatusOK {
			// Accepted: then its pong must at least be bounded; keep going to show the growth.
			continue
		}
	}
	if _, b := queued(s); b > 20*s.MaxPendingBytes/100 {
		t.Fatalf("%d bytes queued after 20 POSTs of one 900 KB ping each", b)
	}
	if errs.get("protocol") != 20 {
		t.Errorf("%d protocol errors, want one per oversized ping (20)", errs.get("protocol"))
	}

	// Many small pings, never polled: the pongs fill the queue up to its bound and the session closes as a
	// slow consumer instead of growing.
	p := newPoller(t, base)
	p.post("40")
	small := strings.TrimSuffix(strings.Repeat("2probe\x1e", maxPacketsPerPost), "\x1e")
	for i := 0; i < 5; i++ {
		// The server may close the session, and with it the connection, mid-flood: a POST that fails
		// on the wire is part of the attack's outcome, not a test error.
		if resp, err := http.Post(p.sidURL(), "text/plain;charset=UTF-8", strings.NewReader(small)); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	s.mu.Lock()
	attacked := s.conns[p.sid]
	s.mu.Unlock()
	if attacked == nil {
		t.Fatal("the attacked session is gone before its close was delivered")
	}
	attacked.mu.Lock()
	n, b := len(attacked.queue), attacked.queueBytes
	attacked.mu.Unlock()
	if n > s.MaxPending+2 || b > s.MaxPendingBytes {
		t.Fatalf("%d packets, %d bytes queued after %d pings: bounds are %d and %d", n, b, 5*maxPacketsPerPost, s.MaxPending, s.MaxPendingBytes)
	}
	if errs.get("slow_consumer") == 0 {
		t.Error("an unread pong flood did not close the session as a slow consumer")
	}
	// A well-behaved client is served throughout.
	checkEcho(t, dial(t, base), "still here")
}

// Attack 1, WebSocket: clients that ping with large payloads and never read.
func TestAttackPingPayloadsWebsocket(t *testing.T) {
	s := &Server{Handler: echoHandler(nil)}
	base := startServer(t, s)
	big := "2" + strings.Repeat("x", 500_000)
	var socks []*websocket.Conn
	for i := 0; i < 20; i++ {
		ws := rawWS(t, base, "")
		wsRead(t, ws) // open
		wsWrite(t, ws, "40")
		for j := 0; j < 3; j++ {
			if ws.WriteMessage(websocket.TextMessage, []byte(big)) != nil {
				break // closed by the server, as it should
			}
		}
		socks = append(socks, ws)
	}
	if _, b := queued(s); b > 1<<20 {
		t.Fatalf("%d bytes queued for 20 websockets that ping with 500 KB and never read", b)
	}
	for _, ws := range socks {
		wsClosed(t, ws)
	}
	checkEcho(t, dial(t, base), "still here")
}

// Attack 3: a WebSocket that answers pings but never connects the namespace ("40") was held forever: the
// handshake timeout started only at "40". Now ConnectTimeout runs from the transport's opening.
func TestAttackWebsocketNeverConnects(t *testing.T) {
	errs := &errCounter{}
	s := &Server{Handler: echoHandler(nil), ConnectTimeout: 300 * time.Millisecond,
		PingInterval: 50 * time.Millisecond, PingTimeout: time.Second, OnError: errs.hook}
	base := startServer(t, s)
	ws := rawWS(t, base, "")
	wsRead(t, ws) // open
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if string(data) == "2" {
				_ = ws.WriteMessage(websocket.TextMessage, []byte("3")) // alive, but never "40"
			}
		}
	}()
	select {
	case <-closed:
	case <-time.After(testWait):
		t.Fatal("a websocket that never connects the namespace is still open")
	}
	if errs.get("connect_timeout") != 1 {
		t.Errorf("connect_timeout reported %d times, want 1", errs.get("connect_timeout"))
	}
	waitFor(t, "no session left", func() bool { return sessions(s) == 0 })

	// A client that does connect in time is not affected.
	c := dial(t, base)
	time.Sleep(2 * s.ConnectTimeout)
	checkEcho(t, c, "connected in time")
}

// Attack 3: a polling session that polls and answers pings but never connects the namespace.
func TestAttackPollingNeverConnects(t *testing.T) {
	s := &Server{Handler: echoHandler(nil), ConnectTimeout: 300 * time.Millisecond,
		PingInterval: 50 * time.Millisecond, PingTimeout: time.Second}
	base := startServer(t, s)
	p := newPoller(t, base)
	deadline := time.Now().Add(testWait)
	for {
		if time.Now().After(deadline) {
			t.Fatal("a polling session that never connects the namespace is still open")
		}
		status, body := p.do(http.MethodGet, p.sidURL(), "")
		if status != http.StatusOK || body == "1" || strings.HasSuffix(body, "\x1e1") {
			break // closed
		}
		if strings.Contains(body, "2") {
			p.do(http.MethodPost, p.sidURL(), "3")
		}
	}
}

// Attack 3: a polling POST that announces a large body and sends it a byte at a time outlived its session
// and held its connection: there was no body read timeout.
func TestAttackSlowPollingBody(t *testing.T) {
	errs := &errCounter{}
	s := &Server{Handler: echoHandler(nil), PingInterval: 200 * time.Millisecond, PingTimeout: 300 * time.Millisecond, OnError: errs.hook}
	base := startServer(t, s)
	p := newPoller(t, base)
	p.post("40")
	u := strings.TrimPrefix(base, "http://")
	conn, err := net.Dial("tcp", u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n", p.sid, u)
	answered := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- err.Error()
			return
		}
		resp.Body.Close()
		answered <- resp.Status
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	stop := time.After(testWait)
	for {
		select {
		case got := <-answered:
			t.Logf("slow POST ended: %s", got)
			if errs.get("body_timeout") != 1 {
				t.Errorf("body_timeout reported %d times, want 1", errs.get("body_timeout"))
			}
			waitFor(t, "the session closed", func() bool { return sessions(s) == 0 })
			return
		case <-tick.C:
			conn.Write([]byte("4")) // one byte at a time, never finishing
		case <-stop:
			t.Fatal("a polling POST trickling its body is still being read")
		}
	}
}

// Attack 4: polling sessions opened and never polled (14,000 a second from one address: 750 MB in 36 s).
// Now one client address holds at most MaxSessionsPerClient sessions, and a session never polled lives
// only UnpolledTimeout.
func TestAttackUnpolledSessions(t *testing.T) {
	errs := &errCounter{}
	s := &Server{Handler: echoHandler(nil), MaxSessionsPerClient: 50, UnpolledTimeout: time.Second, OnError: errs.hook}
	base := startServer(t, s)
	attacker := fromAddr("127.0.0.1")
	refused := 0
	for i := 0; i < 300; i++ {
		resp, err := attacker.Get(base + "/socket.io/?EIO=4&transport=polling")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("handshake answered %s", resp.Status)
		}
	}
	if n := sessions(s); n > 50 {
		t.Fatalf("%d sessions held for one client address, limit 50", n)
	}
	if refused == 0 {
		t.Fatal("no handshake refused")
	}
	// Another client address is served meanwhile, with its own sessions.
	other := fromAddr("127.0.0.2")
	resp, err := other.Get(base + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("another client address refused: %s", resp.Status)
	}
	// Sessions never polled go soon, and their slots with them.
	waitFor(t, "unpolled sessions gone", func() bool { return sessions(s) == 0 })
	if errs.get("unpolled") < 50 {
		t.Errorf("unpolled reported %d times, want at least 50", errs.get("unpolled"))
	}
	resp, err = attacker.Get(base + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("client refused after its sessions expired: %s", resp.Status)
	}
	// A polling client that does poll is unaffected by UnpolledTimeout.
	p := newPoller(t, base)
	p.post("40")
	p.until("40")
	time.Sleep(2 * s.UnpolledTimeout)
	p.post(`42["echo","polled"]`)
	if got := p.until(`42["echoed"`); !strings.Contains(got, "polled") {
		t.Fatalf("got %q", got)
	}
}

// Per-client session limit on WebSockets, with the client address from a trusted proxy's header.
func TestSessionLimitPerClientWebsocket(t *testing.T) {
	s := &Server{Handler: echoHandler(nil), MaxSessionsPerClient: 3,
		ClientAddr: func(r *http.Request) netip.Addr {
			a, _ := netip.ParseAddr(r.Header.Get("X-Test-Client"))
			return a
		}}
	base := startServer(t, s)
	open := func(client string) (*websocket.Conn, int) {
		h := http.Header{"X-Test-Client": {client}}
		u := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
		ws, resp, err := websocket.DefaultDialer.Dial(u, h)
		if err != nil {
			return nil, resp.StatusCode
		}
		t.Cleanup(func() { ws.Close() })
		return ws, http.StatusSwitchingProtocols
	}
	var first *websocket.Conn
	for i := 0; i < 3; i++ {
		ws, code := open("192.0.2.1")
		if ws == nil {
			t.Fatalf("session %d refused: %d", i, code)
		}
		if first == nil {
			first = ws
		}
	}
	if _, code := open("192.0.2.1"); code != http.StatusTooManyRequests {
		t.Fatalf("fourth session of one client: %d, want 429", code)
	}
	if ws, code := open("192.0.2.2"); ws == nil {
		t.Fatalf("another client refused: %d", code)
	}
	first.Close()
	waitFor(t, "a slot freed", func() bool {
		ws, _ := open("192.0.2.1")
		return ws != nil
	})
}

// Events other clients cause (relayed signals) are dropped when the receiver's queue is half full, and
// the receiver keeps its connection.
func TestTryEmitDropsInsteadOfClosing(t *testing.T) {
	ready := make(chan *Conn, 1)
	s := &Server{Handler: func(ctx context.Context, c *Conn) {
		ready <- c
		<-ctx.Done()
	}}
	base := startServer(t, s)
	p := newPoller(t, base) // polls nothing: everything queues
	p.post("40")
	c := <-ready
	dropped := 0
	payload := strings.Repeat("s", 32<<10)
	for i := 0; i < 1000; i++ {
		switch err := c.TryEmit("signal", payload); err {
		case nil:
		case ErrQueueFull:
			dropped++
		default:
			t.Fatalf("TryEmit: %v", err)
		}
	}
	if dropped == 0 {
		t.Fatal("nothing dropped")
	}
	if n, b := queued(s); 2*n > s.MaxPending || 2*b > s.MaxPendingBytes {
		t.Fatalf("%d packets, %d bytes queued: more than half the bounds", n, b)
	}
	if c.Err() != nil {
		t.Fatalf("receiver closed: %v", c.Err())
	}
	// Its own answers still fit.
	if err := c.Emit("answer", "x"); err != nil {
		t.Fatalf("Emit after drops: %v", err)
	}
	if got := p.until(`42["signal"`); !strings.Contains(got, payload[:100]) {
		t.Fatalf("queued signal lost: %.60q", got)
	}
	p.until(`42["answer"`)
}

package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Generous: the machine is shared and busy; these only bound how long a broken test hangs.
const testWait = 20 * time.Second

// startServer mounts s at /socket.io/ on a loopback httptest server and returns its base URL (http://...).
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", s)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		ts.Close()
	})
	return ts.URL
}

// echoHandler answers "echo" with "echoed" (same args), emits "welcome"(id) on connect, returns on "quit",
// and copies every event it reads to seen when seen is not nil.
func echoHandler(seen chan<- Event) func(ctx context.Context, c *Conn) {
	return func(ctx context.Context, c *Conn) {
		if err := c.Emit("welcome", c.ID()); err != nil {
			return
		}
		for {
			ev, err := c.ReadEvent(ctx)
			if err != nil {
				return
			}
			if seen != nil {
				select {
				case seen <- ev:
				case <-ctx.Done():
					return
				}
			}
			switch ev.Name {
			case "echo":
				args := make([]any, len(ev.Args))
				for i, a := range ev.Args {
					args[i] = a
				}
				if err := c.Emit("echoed", args...); err != nil {
					return
				}
			case "quit":
				return
			}
		}
	}
}

func dial(t testing.TB, url string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readEvent(t testing.TB, c *Conn) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	ev, err := c.ReadEvent(ctx)
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	return ev
}

// expectEvent reads events until one named name arrives and returns it.
func expectEvent(t testing.TB, c *Conn, name string) Event {
	t.Helper()
	for {
		if ev := readEvent(t, c); ev.Name == name {
			return ev
		}
	}
}

func argString(t testing.TB, ev Event, i int) string {
	t.Helper()
	if i >= len(ev.Args) {
		t.Fatalf("event %s has %d args, want more than %d", ev.Name, len(ev.Args), i)
	}
	var s string
	if err := json.Unmarshal(ev.Args[i], &s); err != nil {
		t.Fatalf("event %s arg %d = %s: %v", ev.Name, i, ev.Args[i], err)
	}
	return s
}

// checkEcho proves the connection works end to end.
func checkEcho(t testing.TB, c *Conn, token string) {
	t.Helper()
	if err := c.Emit("echo", token); err != nil {
		t.Fatalf("emit echo: %v", err)
	}
	ev := expectEvent(t, c, "echoed")
	if got := argString(t, ev, 0); got != token {
		t.Fatalf("echoed %q, want %q", got, token)
	}
}

// waitFor polls cond until it holds or testWait passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitDone(t testing.TB, c *Conn, what string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(testWait):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// rawWS opens a websocket to the server without our client, for protocol-level tests.
func rawWS(t testing.TB, base, query string) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket" + query
	ws, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("websocket dial %s: %v", u, err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws
}

func wsRead(t testing.TB, ws *websocket.Conn) string {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(testWait))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	return string(data)
}

func wsWrite(t testing.TB, ws *websocket.Conn, msg string) {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("websocket write %q: %v", msg, err)
	}
}

// wsClosed reads until the server closes the socket; it fails if the socket stays open for testWait.
func wsClosed(t testing.TB, ws *websocket.Conn) []string {
	t.Helper()
	var got []string
	_ = ws.SetReadDeadline(time.Now().Add(testWait))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("server did not close the websocket; got %d packets, the first %.200q", len(got), got)
			}
			return got
		}
		got = append(got, string(data))
	}
}

// poller speaks Engine.IO long-polling by hand.
type poller struct {
	t   testing.TB
	url string // base .../socket.io/?EIO=4&transport=polling
	sid string
	buf []string // packets received but not consumed yet
}

func newPoller(t testing.TB, base string) *poller {
	p := &poller{t: t, url: base + "/socket.io/?EIO=4&transport=polling"}
	status, body := p.do(http.MethodGet, p.url, "")
	if status != http.StatusOK || !strings.HasPrefix(body, "0{") {
		t.Fatalf("polling handshake: %d %q", status, body)
	}
	var open struct{ Sid string }
	if err := json.Unmarshal([]byte(body[1:]), &open); err != nil || open.Sid == "" {
		t.Fatalf("open packet %q: %v", body, err)
	}
	p.sid = open.Sid
	return p
}

func (p *poller) sidURL() string { return p.url + "&sid=" + p.sid }

func (p *poller) do(method, url, body string) (int, string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *poller) post(body string) {
	p.t.Helper()
	if status, got := p.do(http.MethodPost, p.sidURL(), body); status != http.StatusOK || got != "ok" {
		p.t.Fatalf("POST %q: %d %q", body, status, got)
	}
}

// get does one long-poll and returns its packets.
func (p *poller) get() []string {
	p.t.Helper()
	status, body := p.do(http.MethodGet, p.sidURL(), "")
	if status != http.StatusOK {
		p.t.Fatalf("GET: %d %q", status, body)
	}
	return strings.Split(body, "\x1e")
}

// next returns the next packet, long-polling when none is buffered and answering pings.
func (p *poller) next() string {
	p.t.Helper()
	for len(p.buf) == 0 {
		for _, pkt := range p.get() {
			if pkt == "2" {
				p.post("3")
				continue
			}
			p.buf = append(p.buf, pkt)
		}
	}
	pkt := p.buf[0]
	p.buf = p.buf[1:]
	return pkt
}

// until skips packets until one with the given prefix arrives and returns it.
func (p *poller) until(prefix string) string {
	p.t.Helper()
	for i := 0; i < 1000; i++ {
		if pkt := p.next(); strings.HasPrefix(pkt, prefix) {
			return pkt
		}
	}
	p.t.Fatalf("no packet starting with %q", prefix)
	return ""
}

// errCounter counts Server.OnError kinds.
type errCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *errCounter) hook(kind string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n = map[string]int{}
	}
	e.n[kind]++
}

func (e *errCounter) get(kind string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n[kind]
}

func startServerMux(t testing.TB, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

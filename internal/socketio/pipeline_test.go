package socketio

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestPipelineToOurServer: our server says in its open packet that it takes events in the flight of the
// namespace connect, so Dial sends DialOptions.Pipeline with "40", and the handler reads them in order.
func TestPipelineToOurServer(t *testing.T) {
	seen := make(chan Event, 16)
	base := startServer(t, &Server{Handler: echoHandler(seen)})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := Dial(ctx, base, &DialOptions{Pipeline: []OutEvent{{Name: "echo", Args: []any{"first"}}, {Name: "echo", Args: []any{"second"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Pipelined() {
		t.Fatal("Dial did not pipeline toward our server")
	}
	for _, want := range []string{"first", "second"} {
		if got := argString(t, expectEvent(t, c, "echoed"), 0); got != want {
			t.Fatalf("echoed %q, want %q", got, want)
		}
		if ev := <-seen; ev.Name != "echo" || argString(t, ev, 0) != want {
			t.Fatalf("server saw %s %s, want echo %q", ev.Name, ev.Args, want)
		}
	}
}

// TestNoPipelineToOtherServers: a server whose open packet does not say so (socket.io's own closes a
// client whose events arrive before its namespace is connected) gets nothing before it answered "40".
func TestNoPipelineToOtherServers(t *testing.T) {
	got := make(chan []string, 1)
	up := websocket.Upgrader{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		var seen []string
		defer func() { got <- seen }()
		msgs := make(chan string, 4)
		go func() {
			defer close(msgs)
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				msgs <- string(data)
			}
		}()
		read := func(d time.Duration) (string, bool) {
			select {
			case m, ok := <-msgs:
				return m, ok
			case <-time.After(d):
				return "", false
			}
		}
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`))
		m, ok := read(testWait)
		if !ok {
			return
		}
		seen = append(seen, m)
		// Anything arriving before our answer would have been pipelined: quiet means it was not.
		if m, ok := read(300 * time.Millisecond); ok {
			seen = append(seen, "early:"+m)
			return
		}
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`40{"sid":"n1"}`))
		if m, ok := read(testWait); ok {
			seen = append(seen, m)
		}
	}))
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := Dial(ctx, ts.URL, &DialOptions{Pipeline: []OutEvent{{Name: "early", Args: []any{1}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Pipelined() {
		t.Fatal("Dial pipelined toward a server that did not offer it")
	}
	if err := c.Emit("after"); err != nil {
		t.Fatal(err)
	}
	if seen := <-got; strings.Join(seen, " ") != `40 42["after"]` {
		t.Fatalf("server read %q, want 40 then the event sent after Dial", seen)
	}
}

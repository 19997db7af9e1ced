package socketio

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/testenv"
)

// nodeProc is a Node script from testdata/socketio whose JSON stdout lines arrive on lines. Closing its stdin
// ends it.
type nodeProc struct {
	lines   chan map[string]any
	skipped []map[string]any // lines read while waiting for others
	stderr  *syncBuffer
}

func startNode(t *testing.T, script string, args ...string) *nodeProc {
	t.Helper()
	if testing.Short() {
		t.Skip("runs Node.js")
	}
	node := testenv.Node(t)
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "socketio")
	testenv.NPMInstall(t, dir)
	cmd := exec.Command(node, append([]string{script}, args...)...)
	cmd.Dir = dir
	if os.Getenv("SOCKETIO_NODE_DEBUG") != "" {
		cmd.Env = append(os.Environ(), "DEBUG=engine*,socket.io*")
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{lines: make(chan map[string]any, 64), stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", script, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // ends when the process closes stdout
		defer wg.Done()
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("node %s printed %q", script, sc.Text())
				continue
			}
			p.lines <- m
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan error, 1)
		go func() { wg.Wait(); done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(testWait):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("node %s stderr:\n%s", script, p.stderr)
		}
	})
	return p
}

// expect waits for a stdout line whose "ev" (or, with ev "", any key "port") matches.
func (p *nodeProc) expect(t *testing.T, ev string) map[string]any {
	t.Helper()
	match := func(m map[string]any) bool { return m["ev"] == ev || (ev == "" && m["port"] != nil) }
	for i, m := range p.skipped {
		if match(m) {
			p.skipped = append(p.skipped[:i], p.skipped[i+1:]...)
			return m
		}
	}
	timeout := time.After(testWait)
	for {
		select {
		case m, ok := <-p.lines:
			if !ok {
				t.Fatalf("node exited while waiting for %q; stderr:\n%s", ev, p.stderr)
			}
			if match(m) {
				return m
			}
			p.skipped = append(p.skipped, m) // lines may arrive in either order (upgrade before connect)
		case <-timeout:
			t.Fatalf("node: no %q line", ev)
		}
	}
}

// nodeClientScenario is the Go side of client.js: it checks the greeting, the burst, an echo, optionally
// waits for the transport upgrade, then says bye and expects the client's disconnect.
func nodeClientScenario(wantFirst string, wantUpgrade bool, wantTransport string, result chan<- error) func(ctx context.Context, c *Conn) {
	return func(ctx context.Context, c *Conn) {
		result <- func() error {
			upgraded := !wantUpgrade
			// next returns the next event other than "upgraded", which may come at any point, even first.
			next := func() (Event, error) {
				ctx, cancel := context.WithTimeout(ctx, testWait)
				defer cancel()
				for {
					ev, err := c.ReadEvent(ctx)
					if err != nil || ev.Name != "upgraded" {
						return ev, err
					}
					if len(ev.Args) != 1 || string(ev.Args[0]) != `"websocket"` {
						return ev, fmt.Errorf("upgraded to %s", ev.Args)
					}
					upgraded = true
				}
			}
			ev, err := next()
			if err != nil {
				return err
			}
			if ev.Name != "hello" || len(ev.Args) != 1 || (wantFirst != "" && string(ev.Args[0]) != strconv.Quote(wantFirst)) {
				return fmt.Errorf("first event %s %s, want hello %q", ev.Name, ev.Args, wantFirst)
			}
			for i := 0; i < 20; i++ {
				ev, err := next()
				if err != nil {
					return err
				}
				if ev.Name != "burst" || len(ev.Args) != 2 || string(ev.Args[0]) != strconv.Itoa(i) {
					return fmt.Errorf("burst %d: got %s %s", i, ev.Name, ev.Args)
				}
				var obj struct{ Text string }
				if err := json.Unmarshal(ev.Args[1], &obj); err != nil || obj.Text != "päckchen \u2603 "+strconv.Itoa(i) {
					return fmt.Errorf("burst %d: payload %s", i, ev.Args[1])
				}
			}
			if err := c.Emit("echo", "ping?", map[string]int{"n": 42}); err != nil {
				return err
			}
			ev, err = next()
			if err != nil {
				return err
			}
			if ev.Name != "echoed" || len(ev.Args) != 2 || string(ev.Args[0]) != `"ping?"` || string(ev.Args[1]) != `{"n":42}` {
				return fmt.Errorf("got %s %s, want the echo", ev.Name, ev.Args)
			}
			for !upgraded {
				if err := c.Emit("transport"); err != nil {
					return err
				}
				if ev, err := next(); err != nil || ev.Name != "transport" {
					return fmt.Errorf("asked for the transport, got %s %v", ev.Name, err)
				}
			}
			if got := c.Transport(); got != wantTransport {
				return fmt.Errorf("server transport %q at the end, want %q", got, wantTransport)
			}
			if err := c.Emit("bye"); err != nil {
				return err
			}
			if _, err := next(); !errors.Is(err, io.EOF) {
				return fmt.Errorf("after bye: %v, want io.EOF", err)
			}
			return nil
		}()
	}
}

func TestNodeClientPollingThenUpgrade(t *testing.T) {
	result := make(chan error, 1)
	// The upgrade may finish before the namespace is connected, so hello may already say "websocket";
	// the client's "upgrade" event proves it started on polling.
	s := &Server{Handler: nodeClientScenario("", true, "websocket", result)}
	base := startServer(t, s)
	p := startNode(t, "client.js", base)
	p.expect(t, "connect")
	if m := p.expect(t, "upgrade"); m["transport"] != "websocket" {
		t.Fatalf("client upgraded to %v", m["transport"])
	}
	waitResult(t, result)
	p.expect(t, "bye")
}

func TestNodeClientPollingOnly(t *testing.T) {
	result := make(chan error, 1)
	s := &Server{Handler: nodeClientScenario("polling", false, "polling", result)}
	base := startServer(t, s)
	p := startNode(t, "client.js", base, "polling")
	if m := p.expect(t, "connect"); m["transport"] != "polling" {
		t.Fatalf("client connected with %v", m)
	}
	waitResult(t, result)
	p.expect(t, "bye")
}

func TestNodeClientWebsocketOnly(t *testing.T) {
	result := make(chan error, 1)
	s := &Server{Handler: nodeClientScenario("websocket", false, "websocket", result)}
	base := startServer(t, s)
	p := startNode(t, "client.js", base, "websocket")
	if m := p.expect(t, "connect"); m["transport"] != "websocket" {
		t.Fatalf("client connected with %v", m)
	}
	waitResult(t, result)
	p.expect(t, "bye")
}

func waitResult(t *testing.T, result <-chan error) {
	t.Helper()
	select {
	case err := <-result:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testWait):
		t.Fatalf("scenario did not finish: %v", <-result)
	}
}

func TestNodeClientSeesServerDisconnect(t *testing.T) {
	s := &Server{Handler: func(ctx context.Context, c *Conn) {
		_ = c.Emit("transport") // any event, then hang up
		_, _ = c.ReadEvent(ctx)
	}}
	base := startServer(t, s)
	p := startNode(t, "client.js", base, "websocket")
	p.expect(t, "connect")
	// The handler returns after the client's first event; the client must see a server-side disconnect.
	if m := p.expect(t, "disconnect"); m["reason"] != "io server disconnect" {
		t.Fatalf("disconnect reason %v, want io server disconnect", m["reason"])
	}
}

func TestDialNodeServer(t *testing.T) {
	// Short ping interval: our client must answer several pings for the connection to survive.
	p := startNode(t, "server.js", "50", "5000")
	port := p.expect(t, "")["port"].(float64)
	c := dial(t, "127.0.0.1:"+strconv.Itoa(int(port)))
	conn := p.expect(t, "connection")
	welcome := expectEvent(t, c, "welcome")
	if argString(t, welcome, 0) != conn["id"] {
		t.Fatalf("welcome %s, server socket id %v", welcome.Args, conn["id"])
	}
	time.Sleep(500 * time.Millisecond) // ~10 ping cycles
	checkEcho(t, c, "über node")
	if err := c.Emit("kick"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	for {
		if _, err := c.ReadEvent(ctx); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after kick: %v, want io.EOF", err)
			}
			break
		}
	}
	if m := p.expect(t, "disconnect"); m["reason"] != "server namespace disconnect" {
		t.Fatalf("server saw disconnect %v", m)
	}
}

func TestDialNodeServerClientClose(t *testing.T) {
	p := startNode(t, "server.js")
	port := p.expect(t, "")["port"].(float64)
	c := dial(t, "http://127.0.0.1:"+strconv.Itoa(int(port))+"/socket.io/")
	p.expect(t, "connection")
	_ = c.Close()
	if m := p.expect(t, "disconnect"); m["reason"] != "client namespace disconnect" {
		t.Fatalf("server saw disconnect %v, want a clean namespace disconnect", m)
	}
}

// syncBuffer is a bytes.Buffer safe for the process's stderr copier and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

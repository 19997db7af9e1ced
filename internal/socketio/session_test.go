package socketio

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// echoSession is the Session counterpart of echoHandler: it answers "echo" with "echoed", closes on "quit",
// and records what it saw so tests can check order and the single Closed call.
type echoSession struct {
	c      *Conn
	mu     sync.Mutex
	events []string
	closed int
	active bool // inside Event: Events and Closed must never overlap
	late   bool // an Event after Closed
	done   chan struct{}
}

func (s *echoSession) Event(ev Event) {
	s.mu.Lock()
	if s.active {
		panic("overlapping Event calls")
	}
	s.active = true
	s.late = s.late || s.closed > 0
	s.events = append(s.events, ev.Name)
	s.mu.Unlock()
	switch ev.Name {
	case "echo":
		args := make([]any, len(ev.Args))
		for i, a := range ev.Args {
			args[i] = a
		}
		_ = s.c.Emit("echoed", args...)
	case "quit":
		_ = s.c.Close()
	}
	s.mu.Lock()
	s.active = false
	s.mu.Unlock()
}

func (s *echoSession) Closed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active {
		panic("Closed during Event")
	}
	s.closed++
	close(s.done)
}

type sessionServer struct {
	*Server
	mu       sync.Mutex
	sessions []*echoSession
}

func newSessionServer() *sessionServer {
	ss := &sessionServer{}
	ss.Server = &Server{Accept: func(c *Conn) Session {
		if c.ID() == "" {
			return nil
		}
		s := &echoSession{c: c, done: make(chan struct{})}
		_ = c.Emit("welcome", c.ID())
		ss.mu.Lock()
		ss.sessions = append(ss.sessions, s)
		ss.mu.Unlock()
		return s
	}}
	return ss
}

func (ss *sessionServer) session(t *testing.T, i int) *echoSession {
	t.Helper()
	waitFor(t, "session", func() bool {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return len(ss.sessions) > i
	})
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.sessions[i]
}

func waitClosed(t *testing.T, s *echoSession) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(testWait):
		t.Fatal("Session.Closed was not called")
	}
}

func TestSessionWebsocketInOrder(t *testing.T) {
	ss := newSessionServer()
	base := startServer(t, ss.Server)
	c := dial(t, base)
	expectEvent(t, c, "welcome")
	const n = 200
	for i := 0; i < n; i++ {
		if err := c.Emit("echo", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if got := argString(t, expectEvent(t, c, "echoed"), 0); got != strconv.Itoa(i) {
			t.Fatalf("echo %d came back as %q: events out of order", i, got)
		}
	}
	_ = c.Emit("quit")
	waitDone(t, c, "server-side close")
	s := ss.session(t, 0)
	waitClosed(t, s)
	time.Sleep(50 * time.Millisecond) // a second Closed would show up here
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed != 1 || s.late || len(s.events) != n+1 {
		t.Fatalf("closed %d times, event after Closed %v, %d events; want 1, false, %d", s.closed, s.late, len(s.events), n+1)
	}
}

func TestSessionClientCloseAndShutdown(t *testing.T) {
	ss := newSessionServer()
	base := startServer(t, ss.Server)
	a := dial(t, base)
	checkEcho(t, a, "a")
	b := dial(t, base)
	checkEcho(t, b, "b")
	_ = a.Close()
	waitClosed(t, ss.session(t, 0))
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := ss.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Shutdown returns only after every session's Closed.
	select {
	case <-ss.session(t, 1).done:
	default:
		t.Fatal("Shutdown returned before Session.Closed")
	}
	waitDone(t, b, "close by shutdown")
}

func TestSessionPolling(t *testing.T) {
	ss := newSessionServer()
	base := startServer(t, ss.Server)
	p := newPoller(t, base)
	p.post("40")
	p.until("40")
	p.until(`42["welcome"`)
	p.post(`42["echo","x"]` + "\x1e" + `42["echo","y"]`)
	if got := p.until(`42["echoed"`); got != `42["echoed","x"]` {
		t.Fatalf("first answer %q", got)
	}
	if got := p.until(`42["echoed"`); got != `42["echoed","y"]` {
		t.Fatalf("second answer %q", got)
	}
	p.post("41")
	waitClosed(t, ss.session(t, 0))
}

// Many connections active at once go through the workers; none may lose or reorder events, and the workers
// end once idle.
func TestSessionWorkersUnderLoad(t *testing.T) {
	ss := newSessionServer()
	base := startServer(t, ss.Server)
	warm := dial(t, base)
	checkEcho(t, warm, "warm")
	_ = warm.Close()
	waitFor(t, "Len 0", func() bool { return ss.Len() == 0 })
	time.Sleep(2 * workerIdle)
	g0 := runtime.NumGoroutine()

	const conns, rounds = 20, 30
	var wg sync.WaitGroup
	errs := make(chan string, conns)
	for i := 0; i < conns; i++ {
		c := dial(t, base)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				_ = c.Emit("echo", strconv.Itoa(r))
			}
			ctx, cancel := context.WithTimeout(context.Background(), testWait)
			defer cancel()
			for r := 0; r < rounds; {
				ev, err := c.ReadEvent(ctx)
				if err != nil {
					errs <- err.Error()
					return
				}
				if ev.Name != "echoed" {
					continue
				}
				if string(ev.Args[0]) != strconv.Quote(strconv.Itoa(r)) {
					errs <- "out of order: " + string(ev.Args[0])
					return
				}
				r++
			}
			_ = c.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	waitFor(t, "Len 0", func() bool { return ss.Len() == 0 })
	waitFor(t, "workers and readers to end", func() bool { return runtime.NumGoroutine() <= g0 })
}

package socketio

import (
	"context"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// Connections that come and go must not leave goroutines behind (server handler, readers, writers, timers).
func TestNoGoroutineLeak(t *testing.T) {
	s := &Server{Handler: echoHandler(nil)}
	base := startServer(t, s)
	warm := dial(t, base)
	checkEcho(t, warm, "warm")
	_ = warm.Close()
	waitFor(t, "Len 0", func() bool { return s.Len() == 0 })
	time.Sleep(100 * time.Millisecond)
	g0 := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		c := dial(t, base)
		checkEcho(t, c, "x")
		if i%2 == 0 {
			_ = c.Close()
		} else {
			_ = c.Emit("quit") // server-side close
			_, _ = c.ReadEvent(context.Background())
		}
	}
	p := newPoller(t, base)
	p.post("40")
	p.until("40")
	p.post("41")
	http.DefaultClient.CloseIdleConnections() // keep-alive connections of the poller are not ours
	deadline := time.Now().Add(testWait)
	for runtime.NumGoroutine() > g0 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, started with %d:\n%s", runtime.NumGoroutine(), g0, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitFor(t, "Len 0", func() bool { return s.Len() == 0 })
}

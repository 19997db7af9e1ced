package socketio

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Baselines are plain gorilla/websocket servers doing the same work without Engine.IO/Socket.IO, measured in
// the same run; compare the two sub-benchmarks of each benchmark.

const benchSignal = `{"type":"offer","sdp":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"}`

// gorillaEcho is the baseline server: echoes every text frame.
func gorillaEcho(t testing.TB) string {
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 4096}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			mt, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if err := ws.WriteMessage(mt, data); err != nil {
				return
			}
		}
	}))
	t.Cleanup(ts.Close)
	return "ws" + strings.TrimPrefix(ts.URL, "http")
}

func BenchmarkRoundTrip(b *testing.B) {
	b.Run("gorilla-baseline", func(b *testing.B) {
		ws, _, err := websocket.DefaultDialer.Dial(gorillaEcho(b), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer ws.Close()
		msg := []byte(`42["echo","0123456789abcdef0123456789abcdef01234567",` + benchSignal + `]`)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
				b.Fatal(err)
			}
			if _, _, err := ws.ReadMessage(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("socketio", func(b *testing.B) {
		base := startServer(b, &Server{Handler: echoHandler(nil)})
		c := dial(b, base)
		expectEvent(b, c, "welcome")
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := c.Emit("echo", "0123456789abcdef0123456789abcdef01234567", benchSignal); err != nil {
				b.Fatal(err)
			}
			if _, err := c.ReadEvent(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("socketio-session", func(b *testing.B) {
		base := startServer(b, newSessionServer().Server)
		c := dial(b, base)
		expectEvent(b, c, "welcome")
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := c.Emit("echo", "0123456789abcdef0123456789abcdef01234567", benchSignal); err != nil {
				b.Fatal(err)
			}
			if _, err := c.ReadEvent(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkIdleConn reports heap bytes and goroutines per idle connection (server and client side in one
// process, as both halves run here).
func BenchmarkIdleConn(b *testing.B) {
	const n = 300
	measure := func(b *testing.B, open func() func()) {
		for i := 0; i < b.N; i++ {
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			g0 := runtime.NumGoroutine()
			closers := make([]func(), 0, n)
			for j := 0; j < n; j++ {
				closers = append(closers, open())
			}
			time.Sleep(100 * time.Millisecond) // let handshakes settle
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heapB/conn")
			b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stackB/conn")
			b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/conn")
			for _, c := range closers {
				c()
			}
			// Closed websockets linger for their close handshake; let them go before the next round.
			for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > g0 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	b.Run("gorilla-baseline", func(b *testing.B) {
		u := gorillaEcho(b)
		d := websocket.Dialer{ReadBufferSize: 1024, WriteBufferSize: 4096}
		measure(b, func() func() {
			ws, _, err := d.Dial(u, nil)
			if err != nil {
				b.Fatal(err)
			}
			// Like a real client, keep reading (pings, events) in a goroutine.
			go func() {
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						return
					}
				}
			}()
			return func() { _ = ws.Close() }
		})
	})
	b.Run("socketio", func(b *testing.B) {
		base := startServer(b, &Server{Handler: func(ctx context.Context, c *Conn) {
			for {
				if _, err := c.ReadEvent(ctx); err != nil {
					return
				}
			}
		}})
		measure(b, func() func() {
			c := dial(b, base)
			return func() { _ = c.Close() }
		})
	})
	b.Run("socketio-session", func(b *testing.B) {
		base := startServer(b, newSessionServer().Server)
		measure(b, func() func() {
			c := dial(b, base)
			checkEcho(b, c, "x") // one event each way, as a peer's handshake
			return func() { _ = c.Close() }
		})
	})
}

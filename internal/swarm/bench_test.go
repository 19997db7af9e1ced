package swarm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
)

const benchSize = 64 << 20

// BenchmarkSeederToDownloader moves a 64 MiB file from one seeder to one
// downloader over a loopback TCP pair (verifying every piece). Compare its
// MB/s with BenchmarkRawCopy, the same bytes through io.Copy on the same
// kind of pair, run together: go test -bench . -run XXX
func BenchmarkSeederToDownloader(b *testing.B) {
	data := testData(benchSize, 1)
	info := testInfo(b, data)
	seedStore := fullStore(info, data)
	for _, depth := range []int{8, 32, 64, 128, 0} {
		name := fmt.Sprintf("fixed=%d", depth)
		if depth == 0 {
			name = "adaptive"
		}
		b.Run(name, func(b *testing.B) {
			benchTransfer(b, info, data, seedStore, depth)
		})
	}
}

func benchTransfer(b *testing.B, info *content.Info, data []byte, seedStore *memStore, depth int) {
	b.SetBytes(benchSize)
	for range b.N {
		seed := newSeeder(b, info, seedStore, 1)
		down, store := newDownloader(b, info, false, func(c *Config) {
			if depth > 0 {
				c.Pipeline, c.MaxPipeline = depth, depth
			}
		})
		store().trust = true
		ctx, cancel := context.WithCancel(context.Background())
		connect(b, ctx, down, seed, nil)
		waitDone(b, down)
		cancel()
		b.StopTimer()
		if !bytes.Equal(store().data, data) {
			b.Fatal("downloaded bytes differ")
		}
		down.Close()
		seed.Close()
		b.StartTimer()
	}
}

func BenchmarkRawCopy(b *testing.B) {
	data := testData(benchSize, 1)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		a, c := tcpPair(b)
		go func() {
			a.Write(data)
			a.Close()
		}()
		n, err := io.Copy(io.Discard, c)
		if err != nil || n != benchSize {
			b.Fatalf("copied %d: %v", n, err)
		}
	}
}

// BenchmarkPipelineLatency is the case the pipeline depth is for: a link
// with 10 ms round trips (5 ms each way), like a WebRTC path. Depth d keeps
// at most d*16 KiB in flight per round trip.
func BenchmarkPipelineLatency(b *testing.B) {
	const size = 32 << 20
	data := testData(size, 2)
	info := testInfo(b, data)
	seedStore := fullStore(info, data)
	for _, depth := range []int{8, 32, 64, 128, 0} {
		name := fmt.Sprintf("fixed=%d", depth)
		if depth == 0 {
			name = "adaptive"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(size)
			for range b.N {
				seed := newSeeder(b, info, seedStore, 1)
				down, store := newDownloader(b, info, false, func(c *Config) {
					if depth > 0 {
						c.Pipeline, c.MaxPipeline = depth, depth
					}
				})
				store().trust = true
				ctx, cancel := context.WithCancel(context.Background())
				connect(b, ctx, down, seed, func(c net.Conn) io.ReadWriteCloser { return newDelayed(c, 5*time.Millisecond) })
				waitDone(b, down)
				cancel()
				down.Close()
				seed.Close()
			}
		})
	}
}

// delayed delivers each write after a fixed delay, in order.
type delayed struct {
	net.Conn
	q    chan delayedWrite
	done chan struct{}
	once sync.Once
}

type delayedWrite struct {
	at time.Time
	b  []byte
}

func newDelayed(c net.Conn, d time.Duration) *delayed {
	w := &delayed{Conn: c, q: make(chan delayedWrite, 1024), done: make(chan struct{})}
	go func() { // ends when Close closes done
		for {
			select {
			case <-w.done:
				return
			case dw := <-w.q:
				time.Sleep(time.Until(dw.at.Add(d)))
				if _, err := c.Write(dw.b); err != nil {
					return
				}
			}
		}
	}()
	return w
}

func (w *delayed) Write(p []byte) (int, error) {
	select {
	case w.q <- delayedWrite{time.Now(), bytes.Clone(p)}:
		return len(p), nil
	case <-w.done:
		return 0, net.ErrClosed
	}
}

func (w *delayed) Close() error {
	w.once.Do(func() { close(w.done) })
	return w.Conn.Close()
}

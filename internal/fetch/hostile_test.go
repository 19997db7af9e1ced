package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/testpeer"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

// junkSeeder announces hash and answers every offer, each time under a fresh
// peer id, by sending BitTorrent piece messages nobody asked for, one every
// 100 ms, until the downloader hangs up; then it comes back as a new peer.
// It returns how many connections it got.
func junkSeeder(t *testing.T, ctx context.Context, url, hash string) func() int {
	t.Helper()
	ih, _ := wire.DecodeID(hash)
	tr := testpeer.Transport(t)
	var mu sync.Mutex
	conns := 0
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Go(func() {
		for ctx.Err() == nil {
			c, err := mediatorclient.Dial(ctx, url, mediatorclient.Options{Logger: quiet()})
			if err != nil {
				return
			}
			sub := c.Subscribe(hash)
			c.Announce(ctx, hash)
			pid, _ := wire.DecodeID(c.PeerID())
			func() {
				defer c.Close()
				for {
					var sig mediatorclient.Signal
					select {
					case <-ctx.Done():
						return
					case ev := <-sub.C:
						s, ok := ev.(mediatorclient.Signal)
						if !ok {
							continue
						}
						sig = s
					}
					recv := make(chan string, 16)
					send := func(ctx context.Context, data string) error { return c.Signal(ctx, hash, sig.From, data) }
					actx, cancel := context.WithTimeout(ctx, 20*time.Second)
					conn, err := tr.Accept(actx, sig.Data, send, recv)
					cancel()
					if err != nil {
						continue
					}
					mu.Lock()
					conns++
					mu.Unlock()
					go io.Copy(io.Discard, conn)
					conn.Write(wire.AppendHandshake(nil, wire.NewHandshake(ih, pid)))
					junk := wire.AppendMessage(nil, wire.Message{ID: wire.Piece, Index: 0, Payload: bytes.Repeat([]byte{7}, 16<<10)})
					for ctx.Err() == nil {
						if _, err := conn.Write(junk); err != nil {
							break
						}
						time.Sleep(100 * time.Millisecond)
					}
					conn.Close()
					return // next time under a new id
				}
			}()
		}
	})
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return conns
	}
}

// TestJunkSeederCannotDefeatTimeout: a seeder that sends unsolicited pieces
// before the info dictionary is known, and comes back under new ids when
// dropped, no longer keeps `get --timeout` from giving up (before, its bytes
// counted as progress: a 5 s timeout ran 93 s). Only verified data is
// progress, and the peer is banned.
func TestJunkSeederCannotDefeatTimeout(t *testing.T) {
	url := testpeer.StartMediator(t).URL()
	_, _, info := testFile(t, "movie.bin", fileSize)
	actx, stop := context.WithCancel(context.Background())
	defer stop()
	conns := junkSeeder(t, actx, url, info.FullHash)

	// The bound is the test's context; a Run that gives up by itself within
	// it passes, one that the junk keeps alive ends with DeadlineExceeded.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Run(ctx, Config{
		Hash: info.FullHash, Output: t.TempDir(), Mediator: url, Transport: testpeer.Transport(t),
		Timeout: 3 * time.Second, Logger: quiet(),
	})
	stop()
	if errors.Is(err, context.DeadlineExceeded) || err == nil {
		t.Fatalf("Run: %v; want it to give up by itself after its 3 s timeout", err)
	}
	if !errors.Is(err, ErrStalled) && !errors.Is(err, ErrVerify) && !errors.Is(err, ErrNoPeers) {
		t.Fatalf("Run: %v; want ErrStalled, ErrVerify or ErrNoPeers", err)
	}
	if conns() == 0 {
		t.Fatal("the junk seeder never got a connection; the test proved nothing")
	}
	t.Logf("gave up with %v after %d junk connection(s)", err, conns())
}

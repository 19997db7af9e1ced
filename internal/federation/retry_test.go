package federation

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// flagHandler raises a flag when a record's message starts with prefix.
type flagHandler struct {
	slog.Handler
	prefix string
	seen   *atomic.Bool
}

func (h flagHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h flagHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.prefix) {
		h.seen.Store(true)
	}
	return nil
}

func (h flagHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h flagHandler) WithGroup(string) slog.Handler      { return h }

// TestLonelyAnnounceRetriedWhenANodeJoins: a mediator alone when its seeder
// announces stores its announcement on the first node that joins, well
// before the old fixed retry (10 scan intervals, 20 s with the default scan)
// and the default lookup interval.
func TestLonelyAnnounceRetriedWhenANodeJoins(t *testing.T) {
	var failed atomic.Bool
	a := newMediator(t, "A", func(c *Config) {
		c.ScanInterval = DefaultScanInterval
		c.LookupInterval = DefaultLookupInterval
		c.Logger = slog.New(flagHandler{prefix: "announce failed", seen: &failed})
	})
	a.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hash := randomHash(t)
	seeder := dialPeer(t, ctx, a)
	if err := seeder.Announce(ctx, hash); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "A's lonely announcement to fail", failed.Load)

	b := newMediator(t, "B", func(c *Config) {
		c.ScanInterval = DefaultScanInterval
		c.LookupInterval = DefaultLookupInterval
	})
	b.start(t, a)
	// Well under the old 20 s retry: only the join or the short backoff
	// can store A's value on B in time.
	key, _ := HashKey(hash)
	jctx, jcancel := context.WithTimeout(ctx, 12*time.Second)
	defer jcancel()
	waitFor(t, jctx, "A's announcement stored on B", func() bool {
		return len(b.fed.store.get(key, time.Now())) > 0
	})
}

// TestEmptyLookupRetriedSoon: a lookup that found nobody is repeated after
// seconds, not after the lookup interval, while a peer keeps asking.
func TestEmptyLookupRetriedSoon(t *testing.T) {
	ms := startMediators(t, 2, func(c *Config) { c.LookupInterval = time.Minute })
	a, b := ms[0], ms[1]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hash := randomHash(t)
	down := dialPeer(t, ctx, b)
	// B's first lookup runs while nobody seeds the hash.
	waitFor(t, ctx, "B's first lookup to find nobody", func() bool {
		if err := down.GetPeers(ctx, hash); err != nil {
			t.Fatal(err)
		}
		b.fed.mu.Lock()
		defer b.fed.mu.Unlock()
		d := b.fed.demand[hash]
		return d != nil && !d.looking && !d.nextLookup.IsZero()
	})
	seeder := dialPeer(t, ctx, a)
	if err := seeder.Announce(ctx, hash); err != nil {
		t.Fatal(err)
	}
	// Well under the one-minute lookup interval.
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	waitPeers(t, wctx, down, hash, contains(seeder.PeerID()))
}

// TestOwnNodeAnswersForOwnHashes: a DHT get_peers sent to a mediator's own
// node for a hash it announces names the mediator itself, so a mediator that
// knows only the seeder's mediator finds it.
func TestOwnNodeAnswersForOwnHashes(t *testing.T) {
	a := newMediator(t, "A", nil)
	a.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hash := randomHash(t)
	seeder := dialPeer(t, ctx, a)
	if err := seeder.Announce(ctx, hash); err != nil {
		t.Fatal(err)
	}
	key, _ := HashKey(hash)
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	query := "d1:ad2:id20:abcdefghij01234567899:info_hash20:" + string(key[:]) + "e1:q9:get_peers1:t2:gp1:y1:qe"
	// The compact value of 127.0.0.1 and A's Socket.IO port.
	want := []byte{'6', ':', 127, 0, 0, 1, 0, 0}
	binary.BigEndian.PutUint16(want[6:], uint16(a.fed.cfg.PublicPort))
	buf := make([]byte, 1500)
	var last []byte
	for {
		if _, err := conn.WriteTo([]byte(query), a.fed.DHTAddr()); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if n, _, err := conn.ReadFrom(buf); err == nil {
			last = append(last[:0], buf[:n]...)
			if bytes.Contains(last, []byte("6:valuesl")) && bytes.Contains(last, want) {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("A's DHT node never named A for its own hash; last reply %q", last)
		}
	}
	// Once nobody seeds the hash, A stops naming itself.
	if err := seeder.Finish(ctx, hash); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "A to drop its own value", func() bool { return len(a.fed.store.get(key, time.Now())) == 0 })
}

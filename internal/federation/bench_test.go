package federation

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
)

// BenchmarkGetPeers measures the time from a peer's first get_peers to an
// answer naming a seeder: "local" with the seeder on the same mediator (the
// baseline), "remote" with the seeder on another mediator found through the
// DHT (lookup, replication link, get_peers over it). The asking peer repeats
// get_peers every 1 ms, so the figure is the federation's latency rather than
// the 1 s repeat interval of real peers. The DHT announcement is in place
// before the clock starts; the replication link is dialled in the first
// iteration and reused afterwards, as in steady state.
func BenchmarkGetPeers(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms := startMediators(b, 3, nil)
	a, b2, c := ms[0], ms[1], ms[2]
	seederA := dialPeer(b, ctx, a)
	seederC := dialPeer(b, ctx, c)
	// The asking peer asks faster than the client's default pacing (50/s);
	// the test mediators allow it.
	down, err := mediatorclient.Dial(ctx, "http://"+c.addr, mediatorclient.Options{Logger: testLogger(), EventRate: 2000, EventBurst: 2000})
	if err != nil {
		b.Fatal(err)
	}
	defer down.Close()
	run := func(b *testing.B, seeder *mediatorclient.Client, remote bool) {
		for b.Loop() {
			b.StopTimer()
			hash := randomHash(b)
			if err := seeder.Announce(ctx, hash); err != nil {
				b.Fatal(err)
			}
			if remote {
				key, _ := HashKey(hash)
				// A walk may miss a node whose answer was late; C's lookup
				// asks B too.
				waitFor(b, ctx, "announcement stored on B or C", func() bool {
					return len(c.fed.store.get(key, time.Now())) > 0 || len(b2.fed.store.get(key, time.Now())) > 0
				})
			} else {
				waitFor(b, ctx, "local seeder", func() bool { return len(c.srv.LocalPeers(hash, 1)) > 0 })
			}
			sub := down.Subscribe(hash)
			b.StartTimer()
			askUntil(b, ctx, down, sub, hash, seeder.PeerID())
			b.StopTimer()
			sub.Close()
			seeder.Finish(ctx, hash)
			b.StartTimer()
		}
	}
	b.Run("local", func(b *testing.B) { run(b, seederC, false) })
	b.Run("remote", func(b *testing.B) { run(b, seederA, true) })
}

func askUntil(b *testing.B, ctx context.Context, c *mediatorclient.Client, sub *mediatorclient.Subscription, hash, want string) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if err := c.GetPeers(ctx, hash); err != nil {
			b.Fatal(err)
		}
		select {
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		case ev := <-sub.C:
			if p, ok := ev.(mediatorclient.Peers); ok && slices.Contains(p.IDs, want) {
				return
			}
		case <-tick.C:
		}
	}
}

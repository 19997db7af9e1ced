package mediator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/clientip"
	"github.com/p2pcdn/p2pcdn/internal/mediation"
)

// nopConn is an emitter that discards everything.
type nopConn struct{}

func (nopConn) Emit(string, ...any) error    { return nil }
func (nopConn) TryEmit(string, ...any) error { return nil }

func testID(i int) string { return fmt.Sprintf("%040x", i) }

func TestRegistryFirstIDWins(t *testing.T) {
	r := newRegistry()
	first, err := r.register(testID(1), nopConn{}, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.register(testID(1), nopConn{}, netip.Addr{}); !errors.Is(err, errIDTaken) {
		t.Fatalf("second register: %v, want errIDTaken", err)
	}
	if r.lookup(testID(1)) != first {
		t.Fatal("second registration replaced the first")
	}
	r.unregister(first)
	if _, err := r.register(testID(1), nopConn{}, netip.Addr{}); err != nil {
		t.Fatalf("id not free after unregister: %v", err)
	}
}

func TestRegistryFinishOneHash(t *testing.T) {
	r := newRegistry()
	p, _ := r.register(testID(1), nopConn{}, netip.Addr{})
	h1, h2 := testID(100), testID(200)
	for _, h := range []string{h1, h2} {
		if added, err := r.announce(p, []string{h}, 10); added != 1 || err != nil {
			t.Fatalf("announce %s: %v %v", h, added, err)
		}
	}
	if added, _ := r.announce(p, []string{h1}, 10); added != 0 {
		t.Fatal("duplicate announce reported as new")
	}
	r.finish(p, []string{h1})
	if got := r.seeders(h1, "", 50); len(got) != 0 {
		t.Fatalf("seeders of finished hash: %v", got)
	}
	if got := r.seeders(h2, "", 50); len(got) != 1 || got[0] != p.id {
		t.Fatalf("seeders of other hash after finish: %v", got)
	}
	r.unregister(p)
	if peers, hashes, seeders := r.stats(); peers+hashes+seeders != 0 {
		t.Fatalf("after unregister: %d peers %d hashes %d seeders", peers, hashes, seeders)
	}
}

func TestRegistryHashLimit(t *testing.T) {
	r := newRegistry()
	p, _ := r.register(testID(1), nopConn{}, netip.Addr{})
	for i := range 3 {
		if _, err := r.announce(p, []string{testID(100 + i)}, 3); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.announce(p, []string{testID(200)}, 3); !errors.Is(err, errTooManyHashes) {
		t.Fatalf("fourth hash: %v, want errTooManyHashes", err)
	}
}

func TestRegistrySeedersRotateFairly(t *testing.T) {
	r := newRegistry()
	h := testID(999)
	const n, max = 7, 3
	for i := range n {
		p, _ := r.register(testID(i), nopConn{}, netip.Addr{})
		r.announce(p, []string{h}, 10)
	}
	asker := testID(3)
	seen := map[string]int{}
	for range n { // n answers of max ids: every other seeder should come up max times
		ids := r.seeders(h, asker, max)
		if len(ids) != max {
			t.Fatalf("got %d ids, want %d", len(ids), max)
		}
		for _, id := range ids {
			if id == asker {
				t.Fatal("answer includes the asker")
			}
			seen[id]++
		}
	}
	if len(seen) != n-1 {
		t.Fatalf("rotation reached %d of %d seeders: %v", len(seen), n-1, seen)
	}
	for id, c := range seen {
		if c < max-1 || c > max+1 {
			t.Errorf("seeder %s got %d answers, want about %d", id[36:], c, max)
		}
	}
}

func TestRegistrySeedersAllWhenFew(t *testing.T) {
	r := newRegistry()
	h := testID(999)
	for i := range 2 {
		p, _ := r.register(testID(i), nopConn{}, netip.Addr{})
		r.announce(p, []string{h}, 10)
	}
	if got := r.seeders(h, testID(0), 50); len(got) != 1 || got[0] != testID(1) {
		t.Fatalf("got %v", got)
	}
	if got := r.seeders(testID(5), "", 50); got == nil || len(got) != 0 {
		t.Fatalf("unknown hash: got %#v, want empty non-nil", got)
	}
}

func TestRegistryBatchLimits(t *testing.T) {
	r := newRegistry()
	r.perClient = clientip.NewCounter(5)
	r.maxSeeders = 8
	a := netip.MustParseAddr("192.0.2.1")
	p1, _ := r.register(testID(1), nopConn{}, a)
	p2, _ := r.register(testID(2), nopConn{}, a)
	// A batch with a duplicate and a hash already seeded counts each new
	// hash once.
	r.announce(p1, []string{testID(100)}, 0)
	added, err := r.announce(p1, []string{testID(100), testID(101), testID(101), testID(102)}, 0)
	if added != 2 || err != nil {
		t.Fatalf("batch: added %d, %v; want 2, nil", added, err)
	}
	if n := r.perClient.Count(a); n != 3 {
		t.Fatalf("client holds %d hashes, want 3", n)
	}
	// The client's limit spans its connections; the rest of a batch is cut.
	added, err = r.announce(p2, []string{testID(200), testID(201), testID(202)}, 0)
	if added != 2 || !errors.Is(err, errTooManyClientHashes) {
		t.Fatalf("second connection: added %d, %v; want 2, errTooManyClientHashes", added, err)
	}
	// Another client has its own allowance, up to the global cap.
	p3, _ := r.register(testID(3), nopConn{}, netip.MustParseAddr("192.0.2.2"))
	added, err = r.announce(p3, []string{testID(300), testID(301), testID(302), testID(303)}, 0)
	if added != 3 || !errors.Is(err, errTooManySeeders) {
		t.Fatalf("third connection: added %d, %v; want 3, errTooManySeeders", added, err)
	}
	// finish and leaving give the allowance back.
	r.finish(p1, []string{testID(100), testID(999)})
	r.unregister(p2)
	if n := r.perClient.Count(a); n != 2 {
		t.Fatalf("client holds %d hashes after finish and leave, want 2", n)
	}
	r.unregister(p1)
	r.unregister(p3)
	if peers, hashes, seeders := r.stats(); peers+hashes+seeders != 0 || len(r.popular) != 0 || r.perClient.Count(a) != 0 {
		t.Fatalf("left behind: %d peers %d hashes %d seeders %d popular", peers, hashes, seeders, len(r.popular))
	}
}

func TestRegistryLargeSwarmIndex(t *testing.T) {
	r := newRegistry()
	h := testID(7)
	var ps []*peer
	for i := range 3 * smallSwarm {
		p, _ := r.register(testID(i+1), nopConn{}, netip.Addr{})
		r.announce(p, []string{h}, 0)
		ps = append(ps, p)
	}
	if r.index[r.swarms[h]] == nil {
		t.Fatal("a large swarm has no index")
	}
	// Remove in an order that moves entries around; the rest must stay
	// findable.
	for i := 0; i < len(ps); i += 2 {
		r.finish(ps[i], []string{h})
	}
	for i, p := range ps {
		if got := r.position(r.swarms[h], p) >= 0; got != (i%2 == 1) {
			t.Fatalf("peer %d present = %v", i, got)
		}
	}
	for i := 1; i < len(ps); i += 2 {
		r.finish(ps[i], []string{h})
	}
	if r.swarms[h] != nil || len(r.popular) != 0 || len(r.index) != 0 {
		t.Fatal("empty swarm kept")
	}
}

func TestRegistryTop(t *testing.T) {
	r := newRegistry()
	var peers []*peer
	for i := range 5 {
		p, _ := r.register(testID(i+1), nopConn{}, netip.Addr{})
		peers = append(peers, p)
	}
	// hash k is seeded by k peers (k = 1..5), plus 200 single-seeder hashes.
	for k := 1; k <= 5; k++ {
		for _, p := range peers[:k] {
			r.announce(p, []string{testID(1000 + k)}, 0)
		}
	}
	for i := range 200 {
		r.announce(peers[0], []string{testID(5000 + i)}, 0)
	}
	top, total := r.top(100)
	if total != 205 || len(top) != 100 {
		t.Fatalf("total %d, %d listed; want 205, 100", total, len(top))
	}
	for k := 5; k >= 2; k-- {
		if e := top[5-k]; e.Hash != testID(1000+k) || e.Seeders != k {
			t.Fatalf("entry %d = %+v, want %s with %d seeders", 5-k, e, testID(1000+k), k)
		}
	}
	for _, e := range top[4:] {
		if e.Seeders != 1 {
			t.Fatalf("entry %+v after the popular ones", e)
		}
	}
	// A heap of a few over many popular hashes keeps the best.
	h := make(topHeap, 0, 3)
	for i := range 50 {
		h.offer(hashCount{testID(i), i % 7}, 3)
	}
	got := h.sorted()
	if got[0].Seeders != 6 || got[1].Seeders != 6 || got[2].Seeders != 6 || got[0].Hash >= got[1].Hash {
		t.Fatalf("top 3 of 50: %+v", got)
	}
}

// TestRegistryMemoryPerHash measures what an announced hash costs (issue 12:
// at least 100,000 per connection, bounded memory per hash). Batches come as
// the decoder makes them, substrings of one payload: the registry must not
// keep a payload alive for a hash it holds.
func TestRegistryMemoryPerHash(t *testing.T) {
	const n = 100000
	r := newRegistry()
	p, _ := r.register(testID(1), nopConn{}, netip.Addr{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for b := 0; b < n; b += 1000 {
		payload := make([]byte, 0, 43*1000+2)
		payload = append(payload, '[')
		for i := b; i < b+1000; i++ {
			if i > b {
				payload = append(payload, ',')
			}
			payload = fmt.Appendf(payload, "%q", testID(1<<20+i))
		}
		payload = append(payload, ']')
		m, err := mediation.Decode(mediation.EventAnnounceMany, []json.RawMessage{payload})
		if err != nil {
			t.Fatal(err)
		}
		// One hash of each batch: it must not pin its batch's payload.
		if added, err := r.announce(p, m.(mediation.AnnounceMany).Hashes[:1], 0); added != 1 || err != nil {
			t.Fatalf("announce: %d, %v", added, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if _, hashes, _ := r.stats(); hashes != n/1000 {
		t.Fatalf("%d hashes left, want %d", hashes, n/1000)
	}
	pinned := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if pinned > 100<<10 {
		t.Errorf("%d hashes still seeded hold %d bytes: payloads kept alive", n/1000, pinned)
	}

	// Now the full 100,000.
	r2 := newRegistry()
	p2, _ := r2.register(testID(2), nopConn{}, netip.Addr{})
	input := make([]string, n)
	for i := range input {
		input[i] = testID(2<<20 + i)
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i += 1000 {
		r2.announce(p2, input[i:i+1000], 0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perHash := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	t.Logf("memory per announced hash: %.0f bytes (100,000 hashes, one seeder each)", perHash)
	if perHash > 200 {
		t.Errorf("an announced hash costs %.0f bytes, more than the 200 bound", perHash)
	}
	runtime.KeepAlive(input)
	runtime.KeepAlive(r)
	runtime.KeepAlive(r2)
}

// BenchmarkRegistryTop is what one GET /hashes computation costs on a
// mediator holding 100,000 single-seeder hashes and 1,000 popular ones:
// only the popular ones are ranked.
func BenchmarkRegistryTop(b *testing.B) {
	r := newRegistry()
	p1, _ := r.register(testID(1), nopConn{}, netip.Addr{})
	p2, _ := r.register(testID(2), nopConn{}, netip.Addr{})
	r.announce(p1, hashRange(0x100000, 100000), 0)
	popular := hashRange(0x300000, 1000)
	r.announce(p1, popular, 0)
	r.announce(p2, popular, 0)
	b.ResetTimer()
	for b.Loop() {
		if top, total := r.top(topHashes); len(top) != topHashes || total != 101000 {
			b.Fatalf("%d listed of %d", len(top), total)
		}
	}
}

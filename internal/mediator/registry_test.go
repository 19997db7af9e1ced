package mediator

import (
	"errors"
	"fmt"
	"testing"
)

// nopConn is an emitter that discards everything.
type nopConn struct{}

func (nopConn) Emit(string, ...any) error { return nil }

func testID(i int) string { return fmt.Sprintf("%040x", i) }

func TestRegistryFirstIDWins(t *testing.T) {
	r := newRegistry()
	first, err := r.register(testID(1), nopConn{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.register(testID(1), nopConn{}); !errors.Is(err, errIDTaken) {
		t.Fatalf("second register: %v, want errIDTaken", err)
	}
	if r.lookup(testID(1)) != first {
		t.Fatal("second registration replaced the first")
	}
	r.unregister(first)
	if _, err := r.register(testID(1), nopConn{}); err != nil {
		t.Fatalf("id not free after unregister: %v", err)
	}
}

func TestRegistryFinishOneHash(t *testing.T) {
	r := newRegistry()
	p, _ := r.register(testID(1), nopConn{})
	h1, h2 := testID(100), testID(200)
	for _, h := range []string{h1, h2} {
		if added, err := r.announce(p, h, 10); !added || err != nil {
			t.Fatalf("announce %s: %v %v", h, added, err)
		}
	}
	if added, _ := r.announce(p, h1, 10); added {
		t.Fatal("duplicate announce reported as new")
	}
	r.finish(p, h1)
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
	p, _ := r.register(testID(1), nopConn{})
	for i := range 3 {
		if _, err := r.announce(p, testID(100+i), 3); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.announce(p, testID(200), 3); !errors.Is(err, errTooManyHashes) {
		t.Fatalf("fourth hash: %v, want errTooManyHashes", err)
	}
}

func TestRegistrySeedersRotateFairly(t *testing.T) {
	r := newRegistry()
	h := testID(999)
	const n, max = 7, 3
	for i := range n {
		p, _ := r.register(testID(i), nopConn{})
		r.announce(p, h, 10)
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
		p, _ := r.register(testID(i), nopConn{})
		r.announce(p, h, 10)
	}
	if got := r.seeders(h, testID(0), 50); len(got) != 1 || got[0] != testID(1) {
		t.Fatalf("got %v", got)
	}
	if got := r.seeders(testID(5), "", 50); got == nil || len(got) != 0 {
		t.Fatalf("unknown hash: got %#v, want empty non-nil", got)
	}
}

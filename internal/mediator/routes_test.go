package mediator

import (
	"errors"
	"testing"
	"time"
)

func TestReturnRoutesFirstLinkHoldsAnID(t *testing.T) {
	r := newReturnRoutes()
	c1, c2 := &conn{}, &conn{}
	now := time.Now()
	if err := r.claim(testID(1), c1, now); err != nil {
		t.Fatal(err)
	}
	if err := r.claim(testID(1), c1, now.Add(time.Minute)); err != nil {
		t.Fatalf("the holder renewing: %v", err)
	}
	if err := r.claim(testID(1), c2, now.Add(time.Minute)); !errors.Is(err, errRouteTaken) {
		t.Fatalf("another link claiming a held id: %v, want errRouteTaken", err)
	}
	if r.lookup(testID(1), now) != c1 {
		t.Fatal("route changed hands")
	}
	// Once the holder is quiet for the TTL, or closes, another may take it.
	later := now.Add(time.Minute + returnRouteTTL)
	if err := r.claim(testID(1), c2, later); err != nil {
		t.Fatalf("claim after expiry: %v", err)
	}
	r.drop(c2)
	if r.lookup(testID(1), later) != nil {
		t.Fatal("route kept after its link closed")
	}
	if err := r.claim(testID(1), c1, later); err != nil {
		t.Fatalf("claim after the holder closed: %v", err)
	}
}

func TestReturnRoutesBounded(t *testing.T) {
	r := newReturnRoutes()
	c1, c2 := &conn{}, &conn{}
	now := time.Now()
	for i := range maxRoutesPerLink {
		if err := r.claim(testID(i), c1, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.claim(testID(maxRoutesPerLink), c1, now); !errors.Is(err, errLinkRouteLimit) {
		t.Fatalf("one id beyond the link's bound: %v", err)
	}
	// Another link is not affected by the first one's bound.
	if err := r.claim(testID(maxRoutesPerLink), c2, now); err != nil {
		t.Fatal(err)
	}
	// Expired routes make room again (a sweep runs at most every
	// routeSweepEvery) and are not returned.
	later := now.Add(returnRouteTTL + routeSweepEvery)
	if err := r.claim(testID(maxRoutesPerLink+1), c1, later); err != nil {
		t.Fatalf("no room after the old routes expired: %v", err)
	}
	if r.lookup(testID(2), later) != nil {
		t.Fatal("an expired route was returned")
	}
	if n := r.perLink[c1]; n != 1 {
		t.Fatalf("link counts %d routes after the sweep, want 1", n)
	}
	r.drop(c1)
	r.drop(c2)
	if len(r.routes)+len(r.perLink) != 0 {
		t.Fatalf("left behind: %d routes, %d links", len(r.routes), len(r.perLink))
	}
}

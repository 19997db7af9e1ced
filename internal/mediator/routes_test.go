package mediator

import (
	"testing"
	"time"
)

func TestReturnRoutesBoundedExpiringDropped(t *testing.T) {
	r := newReturnRoutes()
	c1, c2 := &conn{}, &conn{}
	now := time.Now()
	for i := range maxReturnRoutes {
		r.learn(testID(i), c1, now)
	}
	r.learn(testID(maxReturnRoutes), c2, now)
	if r.lookup(testID(maxReturnRoutes), now) != nil {
		t.Fatal("a route beyond the bound was kept")
	}
	if r.lookup(testID(1), now) != c1 {
		t.Fatal("a learnt route is missing")
	}
	// Expired routes make room again and are not returned.
	later := now.Add(returnRouteTTL)
	if r.lookup(testID(2), later) != nil {
		t.Fatal("an expired route was returned")
	}
	r.learn(testID(maxReturnRoutes), c2, later)
	if r.lookup(testID(maxReturnRoutes), later) != c2 {
		t.Fatal("no room after the old routes expired")
	}
	r.drop(c2)
	if r.lookup(testID(maxReturnRoutes), later) != nil {
		t.Fatal("route kept after its connection closed")
	}
}

package mediator

import (
	"errors"
	"sync"
	"time"
)

// Bounds of the return routes.
const (
	maxReturnRoutes  = 100000 // over all links
	maxRoutesPerLink = 10000  // remote peers one link may speak for at once
	returnRouteTTL   = 2 * time.Minute
	// routeSweepEvery spaces full sweeps for expired routes, which a link
	// at its cap would otherwise trigger with every new id it invents.
	routeSweepEvery = 10 * time.Second
)

var (
	errRouteTaken     = errors.New("another mediator link speaks for this peer id")
	errLinkRouteLimit = errors.New("the link speaks for too many peer ids at once")
	errRoutesFull     = errors.New("too many remote peer ids known")
)

// returnRoutes records which remote peer ids each inbound REPLICATION link
// speaks for (PROTOCOL.md section 5: relayed signals carry sender id +
// receiver id). It serves two purposes:
//
//   - Return path: our peers' answers go back through the link the remote
//     peer's signals came from, without waiting on a DHT lookup.
//   - Who may claim an id: the first link to relay a signal from a remote id
//     holds that id until the link closes or returnRouteTTL passes without a
//     signal from it; meanwhile no other link may send signals "from" it.
//     A link holds at most maxRoutesPerLink ids, and all links together
//     maxReturnRoutes, so invented ids cannot grow the table. (Ids of peers
//     connected here are refused before they get this far.)
type returnRoutes struct {
	mu        sync.Mutex
	routes    map[string]returnRoute // remote peer id -> link
	perLink   map[*conn]int
	lastSweep time.Time
}

type returnRoute struct {
	via   *conn
	until time.Time
}

func newReturnRoutes() *returnRoutes {
	return &returnRoutes{routes: make(map[string]returnRoute), perLink: make(map[*conn]int)}
}

// claim records that link via speaks for remote peer id, or says why it may
// not: another live link holds the id, or a bound is reached.
func (r *returnRoutes) claim(id string, via *conn, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt, ok := r.routes[id]; ok {
		switch {
		case rt.via == via:
			r.routes[id] = returnRoute{via: via, until: now.Add(returnRouteTTL)}
			return nil
		case now.Before(rt.until):
			return errRouteTaken
		}
		r.deleteLocked(id, rt)
	}
	if r.perLink[via] >= maxRoutesPerLink || len(r.routes) >= maxReturnRoutes {
		r.sweepLocked(now)
		if r.perLink[via] >= maxRoutesPerLink {
			return errLinkRouteLimit
		}
		if len(r.routes) >= maxReturnRoutes {
			return errRoutesFull
		}
	}
	r.routes[id] = returnRoute{via: via, until: now.Add(returnRouteTTL)}
	r.perLink[via]++
	return nil
}

// lookup returns the link remote peer id was last seen on, or nil.
func (r *returnRoutes) lookup(id string, now time.Time) *conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt, ok := r.routes[id]
	if !ok {
		return nil
	}
	if !now.Before(rt.until) {
		r.deleteLocked(id, rt)
		return nil
	}
	return rt.via
}

// drop forgets every route through via, once it has closed.
func (r *returnRoutes) drop(via *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perLink[via] == 0 {
		return
	}
	for id, rt := range r.routes {
		if rt.via == via {
			delete(r.routes, id)
		}
	}
	delete(r.perLink, via)
}

func (r *returnRoutes) deleteLocked(id string, rt returnRoute) {
	delete(r.routes, id)
	if n := r.perLink[rt.via] - 1; n > 0 {
		r.perLink[rt.via] = n
	} else {
		delete(r.perLink, rt.via)
	}
}

// sweepLocked drops expired routes, at most once per routeSweepEvery.
func (r *returnRoutes) sweepLocked(now time.Time) {
	if now.Sub(r.lastSweep) < routeSweepEvery {
		return
	}
	r.lastSweep = now
	for id, rt := range r.routes {
		if !now.Before(rt.until) {
			r.deleteLocked(id, rt)
		}
	}
}

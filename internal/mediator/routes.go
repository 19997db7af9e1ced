package mediator

import (
	"sync"
	"time"
)

// Bounds of the return routes.
const (
	maxReturnRoutes = 10000
	returnRouteTTL  = 2 * time.Minute
)

// returnRoutes remembers through which inbound REPLICATION connection a
// remote peer's signals arrived, so that our peers' answers go back the same
// way (PROTOCOL.md section 5: the receiving mediator splits the relay id and
// delivers). Without it an answer would depend on a DHT lookup, which a dead
// node can delay past the downloader's WebRTC timeout. Entries expire after
// returnRouteTTL and go when their connection closes; the table is bounded
// so a flood of invented sender ids cannot grow it.
type returnRoutes struct {
	mu     sync.Mutex
	routes map[string]returnRoute // remote peer id -> connection
}

type returnRoute struct {
	via   *conn
	until time.Time
}

func newReturnRoutes() *returnRoutes {
	return &returnRoutes{routes: make(map[string]returnRoute)}
}

// learn records that remote peer id is reachable through via.
func (r *returnRoutes) learn(id string, via *conn, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.routes[id]; !ok && len(r.routes) >= maxReturnRoutes {
		r.expireLocked(now)
		if len(r.routes) >= maxReturnRoutes {
			return
		}
	}
	r.routes[id] = returnRoute{via: via, until: now.Add(returnRouteTTL)}
}

// lookup returns the connection remote peer id was last seen on, or nil.
func (r *returnRoutes) lookup(id string, now time.Time) *conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt, ok := r.routes[id]
	if !ok {
		return nil
	}
	if !now.Before(rt.until) {
		delete(r.routes, id)
		return nil
	}
	return rt.via
}

// drop forgets every route through via, once it has closed.
func (r *returnRoutes) drop(via *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, rt := range r.routes {
		if rt.via == via {
			delete(r.routes, id)
		}
	}
}

func (r *returnRoutes) expireLocked(now time.Time) {
	for id, rt := range r.routes {
		if !now.Before(rt.until) {
			delete(r.routes, id)
		}
	}
}

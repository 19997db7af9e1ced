package iceserver

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// pendingGrace is how long a granted quota slot waits for its allocation
// to appear; allocations that fail after the quota check (a relay port could
// not be had, say) give their slot back after it.
const pendingGrace = 10 * time.Second

// quotas counts allocations per peer id, per client IP and in total. A slot
// is taken when pion asks (grant), before the allocation exists, so
// concurrent requests cannot overshoot a cap.
type quotas struct {
	maxTotal, maxIP, maxPeer int

	mu      sync.Mutex
	total   int
	perIP   map[netip.Addr]int
	perPeer map[string]int
	pending map[string]slot // by client address, granted but not yet created
	active  map[string]slot // by 5-tuple
}

type slot struct {
	ip   netip.Addr
	peer string
	at   time.Time
}

func newQuotas(total, perIP, perPeer int) *quotas {
	return &quotas{
		maxTotal: total, maxIP: perIP, maxPeer: perPeer,
		perIP: map[netip.Addr]int{}, perPeer: map[string]int{},
		pending: map[string]slot{}, active: map[string]slot{},
	}
}

func addrIP(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// grant takes a slot for peer's allocation from client src, or returns the
// refusal reason.
func (q *quotas) grant(peer string, src net.Addr, now time.Time) string {
	ip := addrIP(src)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expireLocked(now)
	if _, ok := q.pending[src.String()]; ok {
		q.releaseLocked(q.pending[src.String()]) // a retry: its earlier slot is this one
		delete(q.pending, src.String())
	}
	switch {
	case q.total >= q.maxTotal:
		return refuseQuotaTotal
	case q.perIP[ip] >= q.maxIP:
		return refuseQuotaIP
	case q.perPeer[peer] >= q.maxPeer:
		return refuseQuotaPeer
	}
	s := slot{ip: ip, peer: peer, at: now}
	q.total++
	q.perIP[ip]++
	q.perPeer[peer]++
	q.pending[src.String()] = s
	return ""
}

// created turns the pending slot of client src into an active allocation.
func (q *quotas) created(key string, src net.Addr, peer string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s, ok := q.pending[src.String()]
	if ok {
		delete(q.pending, src.String())
	} else {
		// Granted so long ago it expired: count it again, over the cap
		// if need be (it exists).
		s = slot{ip: addrIP(src), peer: peer}
		q.total++
		q.perIP[s.ip]++
		q.perPeer[s.peer]++
	}
	if old, dup := q.active[key]; dup {
		q.releaseLocked(old)
	}
	q.active[key] = s
}

func (q *quotas) deleted(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s, ok := q.active[key]; ok {
		delete(q.active, key)
		q.releaseLocked(s)
	}
}

func (q *quotas) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.active)
}

func (q *quotas) expireLocked(now time.Time) {
	for k, s := range q.pending {
		if now.Sub(s.at) > pendingGrace {
			delete(q.pending, k)
			q.releaseLocked(s)
		}
	}
}

func (q *quotas) releaseLocked(s slot) {
	q.total--
	if q.perIP[s.ip]--; q.perIP[s.ip] <= 0 {
		delete(q.perIP, s.ip)
	}
	if q.perPeer[s.peer]--; q.perPeer[s.peer] <= 0 {
		delete(q.perPeer, s.peer)
	}
}

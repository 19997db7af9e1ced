package federation

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	peer_store "github.com/anacrolix/dht/v2/peer-store"
)

// peerStore holds the announce_peer values this DHT node received, by key:
// 20-byte info hashes (the library's store) or the prototype's 40-byte keys
// (ours). It keys entries by IP and port: several mediators on one host (or
// behind one NAT) are distinct values, which the library's in-memory store
// (keyed by IP only) would collapse into one. Entries expire after ttl; the
// store is bounded so a flood of announces cannot grow it without limit.
type peerStore[K comparable] struct {
	ttl        time.Duration
	maxPerKey  int
	maxKeys    int
	maxReturns int // values per get_peers answer, to stay inside one UDP packet

	mu sync.Mutex
	m  map[K]map[netip.AddrPort]time.Time // expiry per value
}

func newPeerStore[K comparable](ttl time.Duration) *peerStore[K] {
	return &peerStore[K]{
		ttl:        ttl,
		maxPerKey:  200,
		maxKeys:    100000,
		maxReturns: 50,
		m:          make(map[K]map[netip.AddrPort]time.Time),
	}
}

// addrPortOf converts the library's address to a comparable key; IPv4 in
// IPv6 form is unmapped so one mediator is one entry.
func addrPortOf(ip net.IP, port int) (netip.AddrPort, bool) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || port <= 0 || port > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

// libPeerStore is the store of 20-byte keys as the DHT library uses it.
type libPeerStore struct{ *peerStore[[20]byte] }

var _ peer_store.Interface = libPeerStore{}

// AddPeer implements peer_store.Interface; the DHT server calls it for each
// announce_peer with a valid token.
func (s libPeerStore) AddPeer(ih peer_store.InfoHash, na krpc.NodeAddr) {
	ap, ok := addrPortOf(na.IP, na.Port)
	if !ok {
		return
	}
	s.add([20]byte(ih), ap, time.Now())
}

// GetPeers implements peer_store.Interface: the live values of ih.
func (s libPeerStore) GetPeers(ih peer_store.InfoHash) []krpc.NodeAddr {
	var out []krpc.NodeAddr
	for _, ap := range s.get([20]byte(ih), time.Now()) {
		out = append(out, krpc.NodeAddr{IP: ap.Addr().AsSlice(), Port: int(ap.Port())})
	}
	return out
}

func (s *peerStore[K]) add(key K, ap netip.AddrPort, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vals := s.m[key]
	if vals == nil {
		if len(s.m) >= s.maxKeys {
			s.expireLocked(now)
			if len(s.m) >= s.maxKeys {
				return
			}
		}
		vals = make(map[netip.AddrPort]time.Time)
		s.m[key] = vals
	}
	if _, ok := vals[ap]; !ok && len(vals) >= s.maxPerKey {
		for v, exp := range vals {
			if !now.Before(exp) {
				delete(vals, v)
			}
		}
		if len(vals) >= s.maxPerKey {
			return
		}
	}
	vals[ap] = now.Add(s.ttl)
}

func (s *peerStore[K]) get(key K, now time.Time) []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	vals := s.m[key]
	var out []netip.AddrPort
	for ap, exp := range vals {
		if !now.Before(exp) {
			delete(vals, ap)
			continue
		}
		if len(out) < s.maxReturns {
			out = append(out, ap)
		}
	}
	if vals != nil && len(vals) == 0 {
		delete(s.m, key)
	}
	return out
}

// expire drops every expired value; the federation calls it periodically.
func (s *peerStore[K]) expire(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
}

func (s *peerStore[K]) expireLocked(now time.Time) {
	for key, vals := range s.m {
		for ap, exp := range vals {
			if !now.Before(exp) {
				delete(vals, ap)
			}
		}
		if len(vals) == 0 {
			delete(s.m, key)
		}
	}
}

// remove drops one value of key, our own once we stop announcing it.
func (s *peerStore[K]) remove(key K, ap netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vals := s.m[key]
	delete(vals, ap)
	if vals != nil && len(vals) == 0 {
		delete(s.m, key)
	}
}

// len counts the keys with values.
func (s *peerStore[K]) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

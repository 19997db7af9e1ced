package mediator

import (
	"errors"
	"sync"
)

// emitter is what the registry needs of a connection: a way to push an event
// to it. *socketio.Conn satisfies it; tests use doubles.
type emitter interface {
	Emit(name string, args ...any) error
}

// peer is one handshaken MEDIATION connection.
type peer struct {
	id     string
	conn   emitter
	hashes map[string]struct{} // guarded by registry.mu
}

// swarm is the set of local seeders of one hash, kept in a slice so get_peers
// can rotate through it fairly when there are more than fit in one answer.
type swarm struct {
	seeders []*peer
	index   map[*peer]int // position in seeders
	next    int           // where the next answer starts
}

// registry knows which local peer is connected under which id and which
// peers seed which hash. One mutex is enough: every operation is a few map
// lookups, far cheaper than the socket work around it.
type registry struct {
	mu       sync.Mutex
	peers    map[string]*peer
	swarms   map[string]*swarm
	nseeders int // seeder entries over all swarms
}

func newRegistry() *registry {
	return &registry{peers: make(map[string]*peer), swarms: make(map[string]*swarm)}
}

var (
	errIDTaken       = errors.New("peer id is already connected")
	errTooManyHashes = errors.New("too many hashes announced on one connection")
)

// register claims id for conn. The first connection holding an id keeps it:
// a second one is refused, so nobody can take over another peer's signals by
// claiming its id.
func (r *registry) register(id string, conn emitter) (*peer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.peers[id]; ok {
		return nil, errIDTaken
	}
	p := &peer{id: id, conn: conn, hashes: make(map[string]struct{})}
	r.peers[id] = p
	return p, nil
}

// unregister forgets p and everything it seeds.
func (r *registry) unregister(p *peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peers[p.id] == p {
		delete(r.peers, p.id)
	}
	for h := range p.hashes {
		r.removeLocked(p, h)
	}
}

// announce records that p seeds hash. It reports whether that is new.
func (r *registry) announce(p *peer, hash string, maxHashes int) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := p.hashes[hash]; ok {
		return false, nil
	}
	if maxHashes > 0 && len(p.hashes) >= maxHashes {
		return false, errTooManyHashes
	}
	p.hashes[hash] = struct{}{}
	s := r.swarms[hash]
	if s == nil {
		s = &swarm{index: make(map[*peer]int, 1)}
		r.swarms[hash] = s
	}
	s.index[p] = len(s.seeders)
	s.seeders = append(s.seeders, p)
	r.nseeders++
	return true, nil
}

// finish records that p stops seeding hash, and only that hash.
func (r *registry) finish(p *peer, hash string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := p.hashes[hash]; !ok {
		return false
	}
	r.removeLocked(p, hash)
	return true
}

func (r *registry) removeLocked(p *peer, hash string) {
	delete(p.hashes, hash)
	s := r.swarms[hash]
	if s == nil {
		return
	}
	i, ok := s.index[p]
	if !ok {
		return
	}
	last := len(s.seeders) - 1
	if i != last {
		moved := s.seeders[last]
		s.seeders[i] = moved
		s.index[moved] = i
	}
	s.seeders[last] = nil
	s.seeders = s.seeders[:last]
	delete(s.index, p)
	r.nseeders--
	if len(s.seeders) == 0 {
		delete(r.swarms, hash)
	}
}

// lookup returns the peer connected under id, or nil.
func (r *registry) lookup(id string) *peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peers[id]
}

// seeders returns up to max ids of local peers seeding hash, never exclude.
// When there are more seeders than fit, successive calls rotate through all
// of them so every seeder gets its share of downloaders.
func (r *registry) seeders(hash, exclude string, max int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.swarms[hash]
	if s == nil || max <= 0 {
		return []string{}
	}
	n := len(s.seeders)
	size := min(n, max)
	ids := make([]string, 0, size)
	start := s.next % n
	scanned := 0
	for ; scanned < n && len(ids) < max; scanned++ {
		p := s.seeders[(start+scanned)%n]
		if p.id != exclude {
			ids = append(ids, p.id)
		}
	}
	s.next = (start + scanned) % n
	return ids
}

// stats returns the number of connected peers, hashes with seeders and
// seeder entries, for metrics.
func (r *registry) stats() (peers, hashes, seeders int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.peers), len(r.swarms), r.nseeders
}

// hashes returns every hash that has at least one local seeder.
func (r *registry) hashes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	hs := make([]string, 0, len(r.swarms))
	for h := range r.swarms {
		hs = append(hs, h)
	}
	return hs
}

package mediator

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/p2pcdn/p2pcdn/internal/clientip"
)

// emitter is what the registry needs of a connection: a way to push an event
// to it, and one that drops it rather than risk the connection when its
// queue is filling (for what other clients send it). *socketio.Conn
// satisfies it; tests use doubles.
type emitter interface {
	Emit(name string, args ...any) error
	TryEmit(name string, args ...any) error
}

// peer is one handshaken MEDIATION connection.
type peer struct {
	id      string
	conn    emitter
	client  netip.Addr          // for per-client limits
	hashes  map[string]struct{} // guarded by registry.mu
	signals signalBudget        // what others may signal it
}

// smallSwarm is the size up to which a swarm finds a seeder's position by
// scanning: nearly every hash has one or a few seeders, and an index map
// would cost more than everything else a hash holds.
const smallSwarm = 16

// swarm is the set of local seeders of one hash, kept in a slice so get_peers
// can rotate through it fairly when there are more than fit in one answer.
// It is kept to 32 bytes (a size class): a seeder with 100,000 files has as
// many swarms. Large swarms' indexes live in registry.index.
type swarm struct {
	seeders []*peer
	next    int // where the next answer starts
}

// registry knows which local peer is connected under which id and which
// peers seed which hash. One mutex is enough: every operation is a few map
// lookups, far cheaper than the socket work around it.
type registry struct {
	mu       sync.Mutex
	peers    map[string]*peer
	swarms   map[string]*swarm
	index    map[*swarm]map[*peer]int // seeder positions of swarms larger than smallSwarm
	popular  map[string]*swarm        // swarms with two seeders or more, for the top list
	nseeders int                      // seeder entries over all swarms

	perClient  *clientip.Counter // hashes announced per client address; nil: no limit
	maxSeeders int               // seeder entries over all peers; 0: no limit
}

func newRegistry() *registry {
	return &registry{
		peers:   make(map[string]*peer),
		swarms:  make(map[string]*swarm),
		index:   make(map[*swarm]map[*peer]int),
		popular: make(map[string]*swarm),
	}
}

var (
	errIDTaken             = errors.New("peer id is already connected")
	errTooManyHashes       = errors.New("too many hashes announced on one connection")
	errTooManyClientHashes = errors.New("too many hashes announced from one address")
	errTooManySeeders      = errors.New("the mediator holds as many announced hashes as it may")
)

// register claims id for conn. The first connection holding an id keeps it:
// a second one is refused, so nobody can take over another peer's signals by
// claiming its id.
func (r *registry) register(id string, conn emitter, client netip.Addr) (*peer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.peers[id]; ok {
		return nil, errIDTaken
	}
	p := &peer{id: id, conn: conn, client: client, hashes: make(map[string]struct{})}
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
	r.perClient.Release(p.client, len(p.hashes))
	for h := range p.hashes {
		r.removeLocked(p, h)
	}
}

// announce records that p seeds each of hashes, within maxHashes per
// connection (0: no limit), the per-client limit and the global one. It
// returns how many were new, and the limit that refused others, if any.
func (r *registry) announce(p *peer, hashes []string, maxHashes int) (added int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fresh := 0
	for _, h := range hashes {
		if _, ok := p.hashes[h]; !ok {
			fresh++
		}
	}
	if fresh == 0 {
		return 0, nil
	}
	allowed := fresh
	if maxHashes > 0 && len(p.hashes)+allowed > maxHashes {
		allowed, err = max(maxHashes-len(p.hashes), 0), errTooManyHashes
	}
	if r.maxSeeders > 0 && r.nseeders+allowed > r.maxSeeders {
		allowed, err = max(r.maxSeeders-r.nseeders, 0), errTooManySeeders
	}
	if got := r.perClient.AcquireUpTo(p.client, allowed); got < allowed {
		allowed, err = got, errTooManyClientHashes
	}
	// A hash twice in one batch was counted twice: give back what is unused.
	defer func() { r.perClient.Release(p.client, allowed-added) }()
	for _, h := range hashes {
		if added == allowed {
			break
		}
		if _, ok := p.hashes[h]; ok {
			continue // seeded already, or twice in this batch
		}
		// A copy: h may share memory with the rest of a batch, which would
		// otherwise stay alive as long as this hash is seeded. A new swarm
		// shares it with the peer's set (the common case: one seeder).
		s := r.swarms[h]
		h = strings.Clone(h)
		if s == nil {
			s = &swarm{}
			r.swarms[h] = s
		}
		p.hashes[h] = struct{}{}
		r.addLocked(s, p)
		if len(s.seeders) == 2 {
			r.popular[h] = s
		}
		r.nseeders++
		added++
	}
	return added, err
}

// finish records that p stops seeding each of hashes, and only those.
func (r *registry) finish(p *peer, hashes []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range hashes {
		if _, ok := p.hashes[h]; ok {
			r.perClient.Release(p.client, 1)
			r.removeLocked(p, h)
		}
	}
}

func (r *registry) removeLocked(p *peer, hash string) {
	delete(p.hashes, hash)
	s := r.swarms[hash]
	if s == nil || !r.removeSeederLocked(s, p) {
		return
	}
	r.nseeders--
	switch len(s.seeders) {
	case 0:
		delete(r.swarms, hash)
	case 1:
		delete(r.popular, hash)
	}
}

func (r *registry) position(s *swarm, p *peer) int {
	if ix := r.index[s]; ix != nil {
		if i, ok := ix[p]; ok {
			return i
		}
		return -1
	}
	for i, q := range s.seeders {
		if q == p {
			return i
		}
	}
	return -1
}

func (r *registry) addLocked(s *swarm, p *peer) {
	s.seeders = append(s.seeders, p)
	if ix := r.index[s]; ix != nil {
		ix[p] = len(s.seeders) - 1
	} else if len(s.seeders) > smallSwarm {
		ix = make(map[*peer]int, len(s.seeders))
		for i, q := range s.seeders {
			ix[q] = i
		}
		r.index[s] = ix
	}
}

// removeSeederLocked takes p out of s, reporting whether it was there.
func (r *registry) removeSeederLocked(s *swarm, p *peer) bool {
	i := r.position(s, p)
	if i < 0 {
		return false
	}
	ix := r.index[s]
	last := len(s.seeders) - 1
	if i != last {
		moved := s.seeders[last]
		s.seeders[i] = moved
		if ix != nil {
			ix[moved] = i
		}
	}
	s.seeders[last] = nil
	s.seeders = s.seeders[:last]
	if ix != nil {
		delete(ix, p)
		if len(s.seeders) <= smallSwarm/2 {
			delete(r.index, s)
		}
	}
	return true
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
	return r.seedersLocked(hash, exclude, max)
}

// seedersMany is seeders for each of hashes under one lock.
func (r *registry) seedersMany(hashes []string, exclude string, max int) [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]string, len(hashes))
	for i, h := range hashes {
		out[i] = r.seedersLocked(h, exclude, max)
	}
	return out
}

func (r *registry) seedersLocked(hash, exclude string, max int) []string {
	s := r.swarms[hash]
	if s == nil || max <= 0 {
		return []string{}
	}
	n := len(s.seeders)
	ids := make([]string, 0, min(n, max))
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

// hashCount is one entry of the top list.
type hashCount struct {
	Hash    string `json:"hash"`
	Seeders int    `json:"seeders"`
}

// top returns up to n hashes, most seeded first (ties by hash), and the
// number of hashes with seeders. Only swarms of two seeders or more need
// ranking: when they do not fill the list, any single-seeder hashes do, and
// the map walk stops as soon as it has them. So the cost follows the popular
// hashes, not all of them.
func (r *registry) top(n int) ([]hashCount, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := make(topHeap, 0, n)
	for hash, s := range r.popular {
		h.offer(hashCount{hash, len(s.seeders)}, n)
	}
	if len(h) < n {
		for hash, s := range r.swarms {
			if len(h) == n {
				break
			}
			if len(s.seeders) == 1 {
				h = append(h, hashCount{hash, 1})
			}
		}
	}
	return h.sorted(), len(r.swarms)
}

// topHeap keeps the best n hash counts seen, the worst at the root.
type topHeap []hashCount

// worse orders by fewer seeders, then by the larger hash.
func worse(a, b hashCount) bool {
	if a.Seeders != b.Seeders {
		return a.Seeders < b.Seeders
	}
	return a.Hash > b.Hash
}

func (h *topHeap) offer(c hashCount, n int) {
	if len(*h) < n {
		*h = append(*h, c)
		h.up(len(*h) - 1)
		return
	}
	if n == 0 || !worse((*h)[0], c) {
		return
	}
	(*h)[0] = c
	h.down(0)
}

func (h topHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !worse(h[i], h[parent]) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (h topHeap) down(i int) {
	for {
		least := i
		for _, c := range [2]int{2*i + 1, 2*i + 2} {
			if c < len(h) && worse(h[c], h[least]) {
				least = c
			}
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}

// sorted returns the entries best first.
func (h topHeap) sorted() []hashCount {
	out := []hashCount(h)
	slices.SortFunc(out, func(a, b hashCount) int {
		switch {
		case worse(b, a):
			return -1
		case worse(a, b):
			return 1
		}
		return 0
	})
	return out
}

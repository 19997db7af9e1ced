package federation

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"net/netip"
	"sync"
	"time"
)

// tokenRotation is how often the token secret changes; a token stays valid
// for one more rotation, so 5 to 10 minutes, as BEP 5 suggests.
const tokenRotation = 5 * time.Minute

// tokens issues and checks BEP 5 write tokens for the 40-byte layer: a
// token proves that the announcing node received our get_peers answer at
// its IP address.
type tokens struct {
	mu      sync.Mutex
	secrets [2][16]byte // current, previous
	rotated time.Time
}

func (t *tokens) rotate(now time.Time) {
	switch age := now.Sub(t.rotated); {
	case t.rotated.IsZero() || age >= 2*tokenRotation:
		rand.Read(t.secrets[0][:])
		rand.Read(t.secrets[1][:])
		t.rotated = now
	case age >= tokenRotation:
		t.secrets[1] = t.secrets[0]
		rand.Read(t.secrets[0][:])
		t.rotated = now
	}
}

func tokenFor(secret [16]byte, ip netip.Addr) []byte {
	b := ip.Unmap().As16()
	sum := sha1.Sum(append(secret[:], b[:]...))
	return sum[:8]
}

// create returns a token for ip.
func (t *tokens) create(ip netip.Addr, now time.Time) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rotate(now)
	return string(tokenFor(t.secrets[0], ip))
}

// valid reports whether tok was issued to ip within the last two rotations.
func (t *tokens) valid(tok string, ip netip.Addr, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rotate(now)
	for _, s := range t.secrets {
		if subtle.ConstantTimeCompare([]byte(tok), tokenFor(s, ip)) == 1 {
			return true
		}
	}
	return false
}

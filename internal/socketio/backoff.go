package socketio

import (
	"math/rand/v2"
	"time"
)

// Backoff gives reconnect delays with exponential growth and jitter. The zero value uses socket.io-client's
// defaults (1s to 5s, jitter 0.5). It is not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	Jitter   float64 // 0..1: each delay is spread by up to this fraction either way
	attempt  int
}

// Next returns the delay before the next attempt and advances the sequence.
func (b *Backoff) Next() time.Duration {
	lo, hi, jitter := b.Min, b.Max, b.Jitter
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = 5 * time.Second
	}
	if hi < lo {
		hi = lo
	}
	if b.Min == 0 && b.Max == 0 && jitter == 0 {
		jitter = 0.5
	}
	jitter = min(max(jitter, 0), 1)
	d := lo
	for i := 0; i < b.attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	b.attempt++
	if jitter > 0 {
		d += time.Duration((rand.Float64()*2 - 1) * jitter * float64(d))
	}
	return min(max(d, 0), hi)
}

// Reset starts the sequence over, after a successful connection.
func (b *Backoff) Reset() { b.attempt = 0 }

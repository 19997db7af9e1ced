package socketio

import (
	"testing"
	"time"
)

func TestBackoffGrowsAndCaps(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("attempt %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 100*time.Millisecond {
		t.Fatalf("after Reset: %v", got)
	}
}

func TestBackoffJitterStaysInRange(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 8 * time.Second, Jitter: 0.5}
	seen := map[time.Duration]bool{}
	for i := 0; i < 200; i++ {
		b.Reset()
		d := b.Next()
		if d < 500*time.Millisecond || d > 1500*time.Millisecond {
			t.Fatalf("jittered first delay %v outside [0.5s, 1.5s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("jitter produced only %d distinct delays", len(seen))
	}
	for i := 0; i < 50; i++ {
		if d := b.Next(); d > 8*time.Second || d < 0 {
			t.Fatalf("delay %v outside [0, Max]", d)
		}
	}
}

func TestBackoffZeroValue(t *testing.T) {
	var b Backoff
	for i := 0; i < 20; i++ {
		if d := b.Next(); d <= 0 || d > 5*time.Second {
			t.Fatalf("zero-value delay %v", d)
		}
	}
}

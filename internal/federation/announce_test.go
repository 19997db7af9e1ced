package federation

import (
	"context"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// hashesMediator is a LocalMediator whose seeded hashes the test sets.
type hashesMediator struct {
	mu     sync.Mutex
	hashes []string
}

func (m *hashesMediator) set(hashes []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hashes = hashes
}

func (m *hashesMediator) LocalHashes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.hashes...)
}

func (m *hashesMediator) DeliverSignal(hash, from, to, data string) bool { return false }

// TestAnnouncesUseABoundedPool: a mediator with 20,000 seeded hashes whose
// DHT announces are slow (its only bootstrap node never answers) announces
// through a fixed pool of workers. Before, every scan spawned a goroutine
// per pending hash under a mutex (issue 11 item 5: 4,286 goroutines and a
// busy core after an attacker announced 600,000 hashes). Once the hashes are
// gone, nothing is left to announce.
func TestAnnouncesUseABoundedPool(t *testing.T) {
	const hashes = 20000
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	med := &hashesMediator{}
	hs := make([]string, hashes)
	for i := range hs {
		hs[i] = randomHash(t)
	}
	med.set(hs)
	fed, err := New(Config{
		Mediator:         med,
		MediatorID:       randomID(t),
		PublicPort:       9,
		DHTListen:        "127.0.0.1:0",
		Bootstrap:        []string{silent.LocalAddr().String()},
		Logger:           testLogger(),
		ScanInterval:     20 * time.Millisecond,
		QueryResendDelay: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	heapBefore := liveHeap()
	base := runtime.NumGoroutine()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fed.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	defer func() { cancel(); <-done }()

	peak := 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		peak = max(peak, runtime.NumGoroutine()-base)
		time.Sleep(time.Millisecond)
	}
	t.Logf("at most %d goroutines above the %d before Run, with %d hashes to announce", peak, base, hashes)
	// The pool, the loops and the DHT library's goroutines for the walks
	// under way: a few dozen, whatever the number of hashes.
	if peak > 150 {
		t.Fatalf("%d goroutines for %d hashes to announce: announcing is not bounded", peak, hashes)
	}

	waitFor(t, ctx, "every hash tracked", func() bool { return fed.announcing() == hashes })
	perHash := (int64(liveHeap()) - int64(heapBefore)) / hashes
	t.Logf("%d bytes of live heap per hash announced", perHash)
	// The announcement's state and its map entry, whatever the DHT does.
	if perHash > 1024 {
		t.Fatalf("%d bytes of live heap per hash announced", perHash)
	}

	med.set(nil)
	waitFor(t, ctx, "announcements dropped", func() bool { return fed.announcing() == 0 })
}

package fetch

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/transport/v5"

	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/seed"
	"github.com/p2pcdn/p2pcdn/internal/testing/simnet"
	"github.com/p2pcdn/p2pcdn/internal/testpeer"
)

// TestUnreachableSeeder: the seeder and the downloader sit behind two NATs with no STUN/TURN server
// (a simulated internet in the process; the mediator is on loopback). The downloader finds the seeder,
// fails to connect, and gives up soon with ErrUnreachable saying why, well before its timeout; the
// seeder tells its user about the failed attempts.
func TestUnreachableSeeder(t *testing.T) {
	url := testpeer.StartMediator(t).URL()
	lab := simnet.New(t, simnet.Cone, simnet.Cone)
	transport := func(n transport.Net) *rtc.Transport {
		tr, err := rtc.New(rtc.Config{Net: n, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	path, _, info := testFile(t, "far.bin", 300_000)

	var mu sync.Mutex
	var notices []string
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- seed.Run(ctx, seed.Config{
			Paths: []string{path}, Mediator: url, Transport: transport(lab.B), Logger: quiet(),
			Ready:  func(int) { close(ready) },
			Notice: func(msg string) { mu.Lock(); notices = append(notices, msg); mu.Unlock() },
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("seeder ended: %v", err)
	}

	const timeout = 50 * time.Second
	start := time.Now()
	_, err := Run(runCtx(t), Config{
		Hash: info.FullHash, Output: filepath.Join(t.TempDir(), "out.bin"), Mediator: url,
		Transport: transport(lab.A), Timeout: timeout, Logger: quiet(),
	})
	took := time.Since(start)
	t.Logf("gave up after %v: %v", took.Round(time.Millisecond), err)
	var ie *rtc.ICEError
	if !errors.Is(err, ErrUnreachable) || !errors.As(err, &ie) {
		t.Fatalf("Run: %v; want ErrUnreachable with an *rtc.ICEError", err)
	}
	for _, want := range []string{"found 1 peer(s)", "ICE failed", "host/udp", "no STUN or TURN server", "--turn"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}
	if took >= timeout {
		t.Errorf("gave up after %v, not before the %v timeout", took, timeout)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notices) == 0 {
		t.Fatal("the seeder reported no failed attempt")
	}
	if n := notices[0]; !strings.Contains(n, "could not connect to a downloader of far.bin") || !strings.Contains(n, "ICE failed") {
		t.Errorf("seeder's notice %q", n)
	}
	if len(notices) > 1 {
		t.Errorf("%d notices within %v; want at most one per %v: %q", len(notices), took, seed.ReportEvery, notices)
	}
}

package seed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/fetch"
	"github.com/p2pcdn/p2pcdn/internal/scan"
	"github.com/p2pcdn/p2pcdn/internal/testpeer"
)

// openFilesUnder lists the files under dir this process has open.
func openFilesUnder(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	var out []string
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(target, dir) {
			out = append(out, target)
		}
	}
	return out
}

// TestManyFilesCostATableEntry seeds a tree of 2,000 small files (the
// bench seeds 100,000): output comes file by file while hashing goes on,
// every hash reaches the mediator, and idle files hold no goroutine and no
// open file. A file a peer fetches is opened for it and closed again after
// the idle timeout.
func TestManyFilesCostATableEntry(t *testing.T) {
	const n = 2000
	dir := t.TempDir()
	for i := range n {
		write(t, filepath.Join(dir, fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%04d.txt", i)), []byte(fmt.Sprintf("file %d", i)))
	}
	med := testpeer.StartMediator(t)
	tr := testpeer.Transport(t)
	baseG := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu        sync.Mutex
		files     []scan.Entry
		hashedLog []string // "hash" per Progress call, "file" per File call
	)
	ready := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Paths: []string{dir}, Mediator: med.Addr, Transport: tr, Logger: quiet(),
			IdleTimeout: 300 * time.Millisecond,
			Progress: func(int64) {
				mu.Lock()
				hashedLog = append(hashedLog, "hash")
				mu.Unlock()
			},
			File: func(e scan.Entry) {
				mu.Lock()
				files = append(files, e)
				hashedLog = append(hashedLog, "file")
				mu.Unlock()
			},
			Ready: func(n int) { ready <- n },
		})
	}()
	select {
	case got := <-ready:
		if got != n {
			t.Fatalf("Ready(%d), want %d", got, n)
		}
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("not ready")
	}
	mu.Lock()
	if i := slices.Index(hashedLog, "file"); i < 0 || i > len(hashedLog)-n {
		t.Errorf("the first file was reported after %d of %d hashing steps: output must come as hashing goes", i, len(hashedLog))
	}
	mu.Unlock()

	// Idle: no goroutine and no open file per seeded file.
	if g := runtime.NumGoroutine() - baseG; g > 100 {
		t.Errorf("%d goroutines for %d idle files", g, n)
	}
	if open := openFilesUnder(t, dir); len(open) != 0 {
		t.Errorf("idle seeded files are open: %v", open)
	}

	// Every hash reached the mediator: ask about a sample.
	asker := testpeer.Dial(t, med.URL(), "")
	for i := 0; i < n; i += n / 20 {
		h := files[i].Info.FullHash
		sub := asker.Subscribe(h)
		if ids := peersOf(t, asker, sub, h); len(ids) != 1 {
			t.Errorf("the mediator knows %v seeding %s, want the seeder", ids, files[i].Path)
		}
		sub.Close()
	}

	// A peer asks for one file: it is opened, served, and closed when idle.
	want := files[n/2]
	out := t.TempDir()
	fctx, fcancel := context.WithTimeout(context.Background(), waitTimeout)
	defer fcancel()
	res, err := fetch.Run(fctx, fetch.Config{Hash: want.Info.FullHash, Output: out, Mediator: med.URL(),
		Transport: testpeer.Transport(t), Timeout: 30 * time.Second, Logger: quiet()})
	if err != nil {
		t.Fatalf("fetch from the lazy seeder: %v", err)
	}
	got, _ := os.ReadFile(res.Path)
	if orig, _ := os.ReadFile(want.Path); string(got) != string(orig) {
		t.Fatalf("fetched %q, want %q", got, orig)
	}
	deadline := time.Now().Add(waitTimeout)
	for len(openFilesUnder(t, dir)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the fetched file stays open after the idle timeout: %v", openFilesUnder(t, dir))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

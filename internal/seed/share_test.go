package seed

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/fetch"
	"github.com/p2pcdn/p2pcdn/internal/scan"
	"github.com/p2pcdn/p2pcdn/internal/testpeer"
)

// lockedLog collects a logger's lines.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// TestLazyFilesShareOneConnection: one get session fetching several files
// of a lazy seeder gets them all over one peer connection: the files not
// open yet are opened when the downloader opens their channel on it.
func TestLazyFilesShareOneConnection(t *testing.T) {
	const n = 6
	dir := t.TempDir()
	for i := range n {
		write(t, filepath.Join(dir, fmt.Sprintf("f%d.bin", i)), []byte(strings.Repeat(fmt.Sprint(i), 50_000+i)))
	}
	med := testpeer.StartMediator(t)
	var log lockedLog
	logger := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var files []scan.Entry
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Paths: []string{dir}, Mediator: med.Addr, Transport: testpeer.Transport(t), Logger: logger,
			File:  func(e scan.Entry) { files = append(files, e) },
			Ready: func(int) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("not ready")
	}

	fctx, fcancel := context.WithTimeout(context.Background(), waitTimeout)
	defer fcancel()
	s, err := fetch.Dial(fctx, fetch.Config{Mediator: med.URL(), Transport: testpeer.Transport(t), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, f := range files {
		wg.Go(func() {
			_, errs[i] = s.Get(fctx, fetch.Config{Hash: f.Info.FullHash, Output: out + string(os.PathSeparator), Timeout: 30 * time.Second})
		})
	}
	wg.Wait()
	for i, f := range files {
		if errs[i] != nil {
			t.Fatalf("get %s: %v", f.Path, errs[i])
		}
		got, _ := os.ReadFile(filepath.Join(out, filepath.Base(f.Path)))
		want, _ := os.ReadFile(f.Path)
		if string(got) != string(want) {
			t.Fatalf("%s arrived as %d bytes, want %d", f.Path, len(got), len(want))
		}
	}
	if c := log.count("peer connection open"); c != 1 {
		t.Fatalf("the seeder opened %d peer connections for %d files from one downloader, want 1", c, n)
	}
	if c := log.count(`msg=serving`); c != n {
		t.Errorf("the seeder opened %d files, want %d (each when asked)", c, n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

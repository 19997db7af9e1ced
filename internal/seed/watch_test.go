package seed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/testpeer"
)

// TestWatchLimits: more directories than MaxWatches is a clear error, and
// the operating system's limits are explained with the setting to raise.
func TestWatchLimits(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{"a", "b", "c"} {
		write(t, filepath.Join(dir, sub, "f.txt"), []byte("content of "+sub))
	}
	med := testpeer.StartMediator(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := Run(ctx, Config{Paths: []string{dir}, Mediator: med.Addr, Transport: testpeer.Transport(t), Logger: quiet(),
		Watch: true, MaxWatches: 2})
	if !errors.Is(err, ErrWatchLimit) || !strings.Contains(err.Error(), "the limit is 2") {
		t.Fatalf("Run with 4 directories and MaxWatches 2: %v; want ErrWatchLimit saying the limit", err)
	}

	if runtime.GOOS == "linux" {
		for errno, setting := range map[syscall.Errno]string{
			syscall.ENOSPC: "fs.inotify.max_user_watches",
			syscall.EMFILE: "fs.inotify.max_user_instances",
		} {
			got := limitHint(fmt.Errorf("inotify_add_watch: %w", errno))
			if !errors.Is(got, ErrWatchLimit) || !strings.Contains(got.Error(), setting) || !strings.Contains(got.Error(), "sysctl") {
				t.Errorf("limitHint(%v) = %q; want it to name %s and how to raise it", errno, got, setting)
			}
		}
	}
}

// TestWatchDebounces: a file written in several steps is hashed once it
// has been quiet, so only its final content is seeded; a removed file's
// hash is reported.
func TestWatchDebounces(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "keep.txt"), []byte("kept"))
	med := testpeer.StartMediator(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan Change, 16)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Paths: []string{dir}, Mediator: med.Addr, Transport: testpeer.Transport(t), Logger: quiet(),
			Watch: true, Debounce: 300 * time.Millisecond,
			Changed: func(c Change) { changes <- c },
			Ready:   func(int) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	path := filepath.Join(dir, "growing.txt")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		fmt.Fprintf(f, "part %d\n", i)
		time.Sleep(50 * time.Millisecond) // shorter than the debounce
	}
	f.Close()
	var added Change
	select {
	case added = <-changes:
	case <-time.After(waitTimeout):
		t.Fatal("the new file was not picked up")
	}
	want, _ := os.ReadFile(path)
	if added.Kind != Added || added.Entry.Info.TotalLength != int64(len(want)) {
		t.Fatalf("change %v of %d bytes; want the file added once, complete (%d bytes)", added.Kind, added.Entry.Info.TotalLength, len(want))
	}
	select {
	case c := <-changes:
		t.Fatalf("a second change %v for a file written once", c.Kind)
	case <-time.After(600 * time.Millisecond):
	}
	os.Remove(path)
	select {
	case c := <-changes:
		if c.Kind != Removed || c.OldHash != added.Entry.Info.FullHash {
			t.Fatalf("change %+v; want the removal of %s", c, added.Entry.Info.FullHash)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the removal was not picked up")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

package seed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediator"
	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/scan"
	"github.com/p2pcdn/p2pcdn/internal/store"
	"github.com/p2pcdn/p2pcdn/internal/testpeer"
)

// waitTimeout guards against hangs on a busy machine; it measures nothing.
const waitTimeout = 60 * time.Second

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// finishes reads how many hashes the mediator has received finish events
// for (finish or finish_many).
func finishes(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	const key = `p2pcdn_mediator_hashes_received_total{event="finish"} `
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatal("the mediator's metrics have no finish counter")
	return 0
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// peersOf asks the mediator, through its own client, who seeds hash.
func peersOf(t *testing.T, c *mediatorclient.Client, sub *mediatorclient.Subscription, hash string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.GetPeers(ctx, hash); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev := <-sub.C:
			if p, ok := ev.(mediatorclient.Peers); ok {
				return p.IDs
			}
		case <-ctx.Done():
			t.Fatal("no peers answer")
		}
	}
}

func TestNothingToSeed(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "empty1"), nil)
	write(t, filepath.Join(dir, "sub", "empty2"), nil)
	var warned []string
	// The mediator address is never dialed: Run gives up before.
	err := Run(context.Background(), Config{
		Paths: []string{dir}, Mediator: "127.0.0.1:1", Logger: quiet(),
		Warn:  func(path string, err error) { warned = append(warned, path+": "+err.Error()) },
		Ready: func(int) { t.Error("Ready called with nothing to seed") },
	})
	if !errors.Is(err, ErrNothingToSeed) {
		t.Fatalf("Run: %v; want ErrNothingToSeed", err)
	}
	for _, name := range []string{"empty1", "empty2"} {
		if !slices.ContainsFunc(warned, func(w string) bool {
			return strings.Contains(w, name+": ") && strings.Contains(w, "empty file")
		}) {
			t.Errorf("no warning about %s among %q", name, warned)
		}
	}
}

// TestBadPathWarns: a named path that cannot be seeded is a warning while
// another can be; alone it is ErrNothingToSeed, saying why.
func TestBadPathWarns(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	err := Run(context.Background(), Config{Paths: []string{missing}, Mediator: "127.0.0.1:1", Logger: quiet()})
	if !errors.Is(err, ErrNothingToSeed) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Run: %v; want ErrNothingToSeed naming %s", err, missing)
	}

	addr := testpeer.StartMediator(t).Addr
	good := filepath.Join(t.TempDir(), "good.bin")
	write(t, good, []byte("good content"))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var warned []string
	var seeded []string
	err = Run(ctx, Config{
		Paths: []string{missing, good}, Mediator: addr, Transport: testpeer.Transport(t), Logger: quiet(),
		Warn: func(path string, err error) { warned = append(warned, err.Error()) },
		File: func(e scan.Entry) { seeded = append(seeded, e.Path) },
		Ready: func(n int) {
			if n != 1 {
				t.Errorf("Ready(%d), want 1", n)
			}
			cancel()
		},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !slices.Equal(seeded, []string{good}) {
		t.Fatalf("seeded %v, want [%s]", seeded, good)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], missing) || !strings.Contains(warned[0], "no such file") {
		t.Fatalf("warnings %q, want one about %s", warned, missing)
	}
}

// A mediator that is not up yet (a server booting seed and its mediator
// together) is tried again with backoff: seeding starts once it is up. If it
// never comes, Run ends with ctx and says which mediator it waited for.
func TestMediatorNotUpYet(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there yet
	path := filepath.Join(t.TempDir(), "a.bin")
	write(t, path, []byte("hello"))

	short, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err = Run(short, Config{Paths: []string{path}, Mediator: addr, Transport: testpeer.Transport(t), Logger: quiet()})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Run: %v; want the deadline and an error naming %s", err, addr)
	}

	var (
		mu     sync.Mutex
		logged strings.Builder
	)
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	}), nil))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	ready := make(chan []scan.Entry, 1)
	done := make(chan error, 1)
	var files []scan.Entry
	go func() {
		done <- Run(ctx, Config{Paths: []string{path}, Mediator: addr, Transport: testpeer.Transport(t), Logger: logger,
			File:  func(e scan.Entry) { files = append(files, e) },
			Ready: func(int) { ready <- files }})
	}()
	deadline := time.Now().Add(waitTimeout)
	for {
		mu.Lock()
		retrying := strings.Contains(logged.String(), "not reachable yet, retrying")
		mu.Unlock()
		if retrying {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run never said it is waiting for the mediator")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ln, err = net.Listen("tcp", addr); err != nil {
		t.Fatal(err)
	}
	mctx, mstop := context.WithCancel(context.Background())
	mdone := make(chan error, 1)
	go func() { mdone <- (&mediator.Server{Logger: quiet()}).Serve(mctx, ln) }()
	defer func() { mstop(); <-mdone }()
	select {
	case e := <-ready:
		asker := testpeer.Dial(t, addr, "")
		sub := asker.Subscribe(e[0].Info.FullHash)
		defer sub.Close()
		// Ready means announced, not yet handled by the mediator, which
		// reads the asker's connection apart from the seeder's: ask again
		// until the announce has landed.
		for deadline := time.Now().Add(waitTimeout); ; time.Sleep(50 * time.Millisecond) {
			ids := peersOf(t, asker, sub, e[0].Info.FullHash)
			if len(ids) == 1 {
				break
			}
			if len(ids) > 1 || time.Now().After(deadline) {
				t.Fatalf("the mediator knows seeders %v, want the one that waited for it", ids)
			}
		}
	case err := <-done:
		t.Fatalf("Run ended before the mediator came: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("not ready after the mediator came up")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestSeedAnnounceReadyFinish seeds a directory: Ready lists each content
// once, the mediator knows the seeder while it runs, and once ctx ends it
// has been told finish for each file and lists nobody.
func TestSeedAnnounceReadyFinish(t *testing.T) {
	addr := testpeer.StartMediator(t).Addr
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.txt"), []byte("alpha content"))
	write(t, filepath.Join(dir, "b.bin"), []byte(strings.Repeat("beta", 100_000)))
	write(t, filepath.Join(dir, "copy", "a-again.txt"), []byte("alpha content"))
	write(t, filepath.Join(dir, "empty"), nil)

	const seederID = "00000000000000000000000000000000000000aa"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu     sync.Mutex
		warned []string
	)
	ready := make(chan []scan.Entry, 1)
	done := make(chan error, 1)
	var seeded []scan.Entry
	go func() {
		done <- Run(ctx, Config{
			Paths: []string{dir}, Mediator: addr, Transport: testpeer.Transport(t), PeerID: seederID, Logger: quiet(),
			File: func(e scan.Entry) { seeded = append(seeded, e) },
			Warn: func(path string, err error) {
				mu.Lock()
				warned = append(warned, filepath.Base(path))
				mu.Unlock()
			},
			Ready: func(int) { ready <- seeded },
		})
	}()
	var files []scan.Entry
	select {
	case files = <-ready:
	case err := <-done:
		t.Fatalf("Run ended before Ready: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("Ready was not called")
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f.Path))
	}
	if !slices.Equal(names, []string{"a.txt", "b.bin"}) {
		t.Fatalf("Ready with %v, want [a.txt b.bin]", names)
	}
	mu.Lock()
	slices.Sort(warned)
	if !slices.Equal(warned, []string{"a-again.txt", "empty"}) {
		t.Errorf("warned about %v, want the duplicate and the empty file", warned)
	}
	mu.Unlock()

	askCtx, stop := context.WithTimeout(context.Background(), waitTimeout)
	defer stop()
	asker, err := mediatorclient.Dial(askCtx, addr, mediatorclient.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer asker.Close()
	// The announce and our question travel on different connections, so
	// the mediator may see the question first: ask until it knows.
	for _, f := range files {
		sub := asker.Subscribe(f.Info.FullHash)
		deadline := time.Now().Add(waitTimeout)
		for {
			ids := peersOf(t, asker, sub, f.Info.FullHash)
			if slices.Equal(ids, []string{seederID}) {
				break
			}
			if len(ids) != 0 || time.Now().After(deadline) {
				t.Fatalf("peers of %s while seeding: %v, want [%s]", f.Path, ids, seederID)
			}
			time.Sleep(20 * time.Millisecond)
		}
		sub.Close()
	}
	before := finishes(t, addr)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after ctx ended: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after ctx ended")
	}
	// Finish events are counted as the mediator reads them, which may be
	// a moment after Run returned.
	deadline := time.Now().Add(waitTimeout)
	for finishes(t, addr)-before < len(files) {
		if time.Now().After(deadline) {
			t.Fatalf("the mediator got finish for %d hashes, want %d", finishes(t, addr)-before, len(files))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The mediator counts an event before it applies it: ask until empty.
	for _, f := range files {
		sub := asker.Subscribe(f.Info.FullHash)
		deadline := time.Now().Add(waitTimeout)
		for {
			ids := peersOf(t, asker, sub, f.Info.FullHash)
			if len(ids) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("peers of %s after seeding: %v, want none", f.Path, ids)
			}
			time.Sleep(20 * time.Millisecond)
		}
		sub.Close()
	}
}

// TestCacheSavedAndUsed: the first run saves the hash cache, the second
// takes the dictionaries from it without reading the files.
func TestCacheSavedAndUsed(t *testing.T) {
	addr := testpeer.StartMediator(t).Addr
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.bin"), []byte(strings.Repeat("x", 300_000)))
	cachePath := filepath.Join(t.TempDir(), "cache")
	tr := testpeer.Transport(t)
	runOnce := func() []scan.Entry {
		t.Helper()
		cache, err := store.OpenHashCache(cachePath)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		var got []scan.Entry
		var hashed int64
		err = Run(ctx, Config{
			Paths: []string{dir}, Mediator: addr, Transport: tr, Cache: cache, Logger: quiet(),
			Progress: func(n int64) { hashed += n },
			File:     func(e scan.Entry) { got = append(got, e) },
			Ready:    func(int) { cancel() },
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("Ready with %d files, want 1", len(got))
		}
		if got[0].Cached != (hashed == 0) {
			t.Fatalf("Cached %v but %d bytes hashed", got[0].Cached, hashed)
		}
		return got
	}
	if first := runOnce(); first[0].Cached {
		t.Fatal("the first run found the file in an empty cache")
	}
	if second := runOnce(); !second[0].Cached {
		t.Fatal("the second run hashed the file again: the cache was not saved")
	}
}

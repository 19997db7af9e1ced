package scan

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/store"
)

func write(t *testing.T, path, data string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tree builds a directory with shareable files and every kind of file that
// must be skipped.
func tree(t *testing.T) string {
	root := t.TempDir()
	write(t, filepath.Join(root, "b.txt"), "bee")
	write(t, filepath.Join(root, "a.txt"), "ay")
	write(t, filepath.Join(root, "sub", "c.bin"), "sea")
	write(t, filepath.Join(root, "empty"), "")
	write(t, filepath.Join(root, "movie.mp4"+store.PartSuffix), "partial")
	write(t, filepath.Join(root, "movie.mp4"+store.StateSuffix), "state")
	os.Symlink(filepath.Join(root, "a.txt"), filepath.Join(root, "link-to-a"))
	os.Symlink(root, filepath.Join(root, "sub", "loop"))
	os.Symlink(filepath.Join(root, "nowhere"), filepath.Join(root, "dangling"))
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Logf("no fifo: %v", err)
	}
	return root
}

type warnings struct {
	mu sync.Mutex
	m  map[string]string
}

func (w *warnings) warn(path string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]string{}
	}
	w.m[filepath.Base(path)] = err.Error()
}

func TestFilesWalk(t *testing.T) {
	root := tree(t)
	var w warnings
	var progress int64
	entries, err := Files(context.Background(), []string{root}, Options{Warn: w.warn, Progress: func(n int64) { progress += n }})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		rel, _ := filepath.Rel(root, e.Path)
		if e.Rel != filepath.ToSlash(rel) {
			t.Errorf("%s: Rel %q, want %q", e.Path, e.Rel, filepath.ToSlash(rel))
		}
		got = append(got, rel+"="+e.Info.FileName)
		if err := e.Info.Validate(); err != nil {
			t.Error(err)
		}
		if e.Cached {
			t.Error("cached without a cache")
		}
	}
	want := []string{"a.txt=a.txt", "b.txt=b.txt", "link-to-a=link-to-a", "sub/c.bin=c.bin"}
	if !slices.Equal(got, want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	if progress != int64(len("ay")+len("bee")+len("ay")+len("sea")) {
		t.Fatalf("progress %d", progress)
	}
	for _, name := range []string{"empty", "movie.mp4.part", "movie.mp4.part.state", "loop", "dangling", "fifo"} {
		if _, ok := w.m[name]; !ok {
			t.Errorf("no warning for %s (warnings: %v)", name, w.m)
		}
	}
	if !strings.Contains(w.m["empty"], "empty file") || !strings.Contains(w.m["loop"], "symbolic link to a directory") {
		t.Errorf("unclear warnings: %v", w.m)
	}
}

func TestFilesNamedPathErrors(t *testing.T) {
	root := tree(t)
	good := filepath.Join(root, "b.txt")
	entries, err := Files(context.Background(),
		[]string{filepath.Join(root, "missing"), good, filepath.Join(root, "empty"), good, filepath.Join(root, "fifo")}, Options{})
	if len(entries) != 1 || entries[0].Path != good {
		t.Fatalf("entries %+v: the good named file must still be hashed, once", entries)
	}
	if err == nil {
		t.Fatal("no error for unshareable named paths")
	}
	for _, want := range []string{"missing: no such file", "empty: " + content.ErrEmptyFile.Error()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !errors.Is(err, content.ErrEmptyFile) {
		t.Error("joined error does not wrap ErrEmptyFile")
	}
}

// A warm run over an unchanged tree must not read any file: every hash goes
// through the counting hook, which must see no call; after one file changes
// it must see exactly that file.
func TestFilesCacheAvoidsReads(t *testing.T) {
	root := tree(t)
	cachePath := filepath.Join(t.TempDir(), "hashes")
	var hashed []string
	var mu sync.Mutex
	opts := func(c *store.HashCache) Options {
		return Options{Cache: c, hashFile: func(ctx context.Context, path string, p func(int64)) (*content.Info, fs.FileInfo, error) {
			mu.Lock()
			hashed = append(hashed, filepath.Base(path))
			mu.Unlock()
			return content.HashFileStat(ctx, path, p)
		}}
	}
	c, _ := store.OpenHashCache(cachePath)
	cold, err := Files(context.Background(), []string{root}, opts(c))
	if err != nil || len(hashed) != 4 {
		t.Fatalf("cold run: %v, hashed %v", err, hashed)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}

	hashed = nil
	c, _ = store.OpenHashCache(cachePath)
	if n := TotalSize(context.Background(), []string{root}, c); n != 0 {
		t.Fatalf("TotalSize with a warm cache: %d, want 0", n)
	}
	warm, err := Files(context.Background(), []string{root}, opts(c))
	if err != nil {
		t.Fatal(err)
	}
	if len(hashed) != 0 {
		t.Fatalf("warm run read %v", hashed)
	}
	for i := range warm {
		if !warm[i].Cached || warm[i].Info.FullHash != cold[i].Info.FullHash || warm[i].Info.FileName != cold[i].Info.FileName {
			t.Fatalf("warm entry %d: %+v vs cold %+v", i, warm[i], cold[i])
		}
	}

	write(t, filepath.Join(root, "sub", "c.bin"), "changed")
	if n := TotalSize(context.Background(), []string{root}, c); n != int64(len("changed")) {
		t.Fatalf("TotalSize after a change: %d", n)
	}
	changed, err := Files(context.Background(), []string{root}, opts(c))
	if err != nil || !slices.Equal(hashed, []string{"c.bin"}) {
		t.Fatalf("after changing c.bin: %v, hashed %v", err, hashed)
	}
	if changed[3].Cached || changed[3].Info.FullHash == cold[3].Info.FullHash {
		t.Fatal("changed file served from the cache")
	}
}

func TestFilesCancel(t *testing.T) {
	root := tree(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Files(ctx, []string{root}, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

// TestWalkStreams: Walk hands each file over as soon as it is hashed (the
// next is hashed only after fn returned), a named file's Rel is its base
// name, and an error from fn stops the walk.
func TestWalkStreams(t *testing.T) {
	root := tree(t)
	var events []string
	opt := Options{hashFile: func(ctx context.Context, path string, p func(int64)) (*content.Info, fs.FileInfo, error) {
		events = append(events, "hash "+filepath.Base(path))
		return content.HashFileStat(ctx, path, p)
	}}
	named := filepath.Join(root, "sub", "c.bin")
	err := Walk(context.Background(), []string{named, filepath.Join(root, "sub")}, opt, func(e Entry) error {
		events = append(events, "got "+e.Rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"hash c.bin", "got c.bin"}; !slices.Equal(events, want) {
		t.Fatalf("events %v, want %v (the directory's c.bin is the named one, seen once)", events, want)
	}

	events = nil
	stop := errors.New("enough")
	err = Walk(context.Background(), []string{root}, opt, func(e Entry) error {
		events = append(events, "got "+e.Rel)
		return stop
	})
	if !errors.Is(err, stop) || !slices.Equal(events, []string{"hash a.txt", "got a.txt"}) {
		t.Fatalf("Walk = %v after %v; want it to stop after the first file", err, events)
	}
}

package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
)

func TestHashCacheRoundTrip(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.bin")
	os.WriteFile(file, []byte("hello world, version one"), 0o644)
	info, fi, err := content.HashFileStat(context.Background(), file, nil)
	if err != nil {
		t.Fatal(err)
	}
	cachePath := filepath.Join(dir, "cache", "hashes")
	c, err := OpenHashCache(cachePath)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Lookup(file, fi); ok {
		t.Fatal("hit in an empty cache")
	}
	c.Put(file, fi, info)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}

	c, err = OpenHashCache(cachePath)
	if err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(file)
	got, ok := c.Lookup(file, fi2)
	if !ok || got.FullHash != info.FullHash || got.FileName != "f.bin" {
		t.Fatalf("lookup after reload: %v %+v", ok, got)
	}
	got.PieceHashes[0] = "mutated"
	if again, _ := c.Lookup(file, fi2); again.PieceHashes[0] != info.PieceHashes[0] {
		t.Fatal("Lookup hands out shared state")
	}
	// Relative path to the same file hits too.
	wd, _ := os.Getwd()
	if rel, err := filepath.Rel(wd, file); err == nil {
		if _, ok := c.Lookup(rel, fi2); !ok {
			t.Fatal("relative path missed")
		}
	}
	if _, ok := c.Lookup(filepath.Join(dir, "other.bin"), fi2); ok {
		t.Fatal("hit for another path")
	}
}

// Replacing the content in place while keeping size, mtime and inode must
// miss: the change time gives it away.
func TestHashCacheMissesContentChangeWithSameMtime(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.bin")
	os.WriteFile(file, []byte("hello world, version one"), 0o644)
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(file, mtime, mtime)
	info, fi, err := content.HashFileStat(context.Background(), file, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := OpenHashCache(filepath.Join(dir, "hashes"))
	c.Put(file, fi, info)

	time.Sleep(20 * time.Millisecond) // let the change time move on coarse clocks
	f, _ := os.OpenFile(file, os.O_WRONLY, 0)
	f.WriteAt([]byte("HELLO"), 0)
	f.Close()
	os.Chtimes(file, mtime, mtime)
	fi2, _ := os.Stat(file)
	if fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) || !os.SameFile(fi, fi2) {
		t.Fatal("test setup: size, mtime or inode changed")
	}
	if _, ok := c.Lookup(file, fi2); ok {
		t.Fatal("cache hit for changed content with the same size, mtime and inode")
	}
	// A plain mtime change misses as well.
	os.Chtimes(file, mtime, mtime.Add(time.Second))
	fi3, _ := os.Stat(file)
	c.Put(file, fi2, info)
	if _, ok := c.Lookup(file, fi3); ok {
		t.Fatal("cache hit after an mtime change")
	}
}

func TestHashCacheCorruptFileIgnored(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.bin")
	os.WriteFile(file, []byte("data"), 0o644)
	info, fi, _ := content.HashFileStat(context.Background(), file, nil)
	cachePath := filepath.Join(dir, "hashes")
	c, _ := OpenHashCache(cachePath)
	c.Put(file, fi, info)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(cachePath)
	for name, data := range map[string][]byte{
		"garbage":   []byte("\x00\x01garbage"),
		"truncated": good[:len(good)-3],
		"flipped":   append(append([]byte{}, good[:len(good)-5]...), 'X', 'X', 'X', 'X', 'X'),
		"empty":     {},
	} {
		os.WriteFile(cachePath, data, 0o644)
		c, err := OpenHashCache(cachePath)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, ok := c.Lookup(file, fi); ok {
			t.Fatalf("%s: corrupt cache produced a hit", name)
		}
		c.Put(file, fi, info)
		if err := c.Save(); err != nil {
			t.Fatalf("%s: save over a corrupt cache: %v", name, err)
		}
	}
}

func FuzzDecodeCache(f *testing.F) {
	f.Add([]byte(cacheHeader + "0\n[]"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeCache(bytes.NewReader(data)) // must not panic
	})
}

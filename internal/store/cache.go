package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/p2pcdn/p2pcdn/internal/content"
)

// cacheHeader starts a hash cache file, followed by the xxhash64 (hex) of
// the JSON body and a newline.
const cacheHeader = "p2pcdn-hashcache 1 "

// cacheKeepUnused is how long an entry that is neither looked up nor put
// survives in the cache file.
const cacheKeepUnused = 30 * 24 * time.Hour

// HashCache remembers info dictionaries of files already hashed, so seeding
// an unchanged directory again does not read file contents. An entry is used
// only while the file's absolute path, size, modification time, change time
// (which no user tool can set back), inode and device are all unchanged.
type HashCache struct {
	path string

	mu      sync.Mutex
	entries map[string]*cacheEntry // by absolute path
	gen     uint64                 // bumps on every change
	saved   uint64                 // gen last written
}

type cacheEntry struct {
	Path  string          `json:"path"`
	Stamp fileStamp       `json:"stamp"`
	Used  int64           `json:"used"` // unix seconds of the last Lookup hit or Put
	Info  json.RawMessage `json:"info"` // prototype JSON, re-validated on load

	info *content.Info
}

// fileStamp identifies one version of a file without reading it.
type fileStamp struct {
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime_ns"`
	CTime int64  `json:"ctime_ns"`
	Inode uint64 `json:"inode"`
	Dev   uint64 `json:"dev"`
}

func stampOf(fi fs.FileInfo) fileStamp {
	s := fileStamp{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	s.CTime, s.Inode, s.Dev = sysStamp(fi)
	return s
}

// DefaultHashCachePath returns where the hash cache lives by default, under
// the user's cache directory.
func DefaultHashCachePath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("hash cache: %w", err)
	}
	return filepath.Join(dir, "p2pcdn", "hashes.v1"), nil
}

// OpenHashCache loads the cache file at path. A missing, unreadable or
// corrupt file gives an empty cache (logged, not an error): the cache only
// saves time.
func OpenHashCache(path string) (*HashCache, error) {
	if path == "" {
		return nil, errors.New("hash cache: empty path")
	}
	c := &HashCache{path: path, entries: make(map[string]*cacheEntry)}
	data, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			slog.Warn("hash cache unreadable, starting empty", "path", path, "err", err)
		}
		return c, nil
	}
	entries, err := decodeCache(data)
	if err != nil {
		slog.Warn("hash cache corrupt, starting empty", "path", path, "err", err)
		return c, nil
	}
	for _, e := range entries {
		c.entries[e.Path] = e
	}
	return c, nil
}

func decodeCache(data []byte) ([]*cacheEntry, error) {
	head, body, ok := bytes.Cut(data, []byte("\n"))
	if !ok || !bytes.HasPrefix(head, []byte(cacheHeader)) {
		return nil, errors.New("not a p2pcdn hash cache")
	}
	sum, err := strconv.ParseUint(string(head[len(cacheHeader):]), 16, 64)
	if err != nil || sum != xxhash.Sum64(body) {
		return nil, errors.New("checksum mismatch")
	}
	var entries []*cacheEntry
	if err := json.Unmarshal(body, &entries); err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e == nil || !filepath.IsAbs(e.Path) {
			return nil, errors.New("bad entry")
		}
		if e.info, err = content.ParseInfo(e.Info); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// Lookup returns the cached info dictionary of the file at path if fi (from
// a fresh stat of path) shows the file unchanged since it was hashed.
func (c *HashCache) Lookup(path string, fi fs.FileInfo) (*content.Info, bool) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[abs]
	if e == nil || e.Stamp != stampOf(fi) {
		return nil, false
	}
	if now := time.Now().Unix(); now-e.Used > 3600 { // refresh coarsely; not worth a write per run
		e.Used = now
		c.gen++
	}
	return e.info.Clone(), true
}

// Put records the info dictionary of the file at path, hashed while its
// metadata was fi.
func (c *HashCache) Put(path string, fi fs.FileInfo, info *content.Info) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return
	}
	raw, _ := info.MarshalJSON()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[abs] = &cacheEntry{Path: abs, Stamp: stampOf(fi), Used: time.Now().Unix(), Info: raw, info: info.Clone()}
	c.gen++
}

// Save writes the cache file atomically (temporary file, then rename),
// dropping entries unused for a month. It does nothing if nothing changed.
func (c *HashCache) Save() error {
	c.mu.Lock()
	if c.gen == c.saved {
		c.mu.Unlock()
		return nil
	}
	gen := c.gen
	cutoff := time.Now().Add(-cacheKeepUnused).Unix()
	entries := make([]*cacheEntry, 0, len(c.entries))
	for _, e := range c.entries {
		if e.Used >= cutoff {
			entries = append(entries, e)
		}
	}
	body, err := json.Marshal(entries)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("save hash cache: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("save hash cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), filepath.Base(c.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save hash cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	_, err = fmt.Fprintf(tmp, "%s%x\n", cacheHeader, xxhash.Sum64(body))
	if err == nil {
		_, err = tmp.Write(body)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path)
	}
	if err != nil {
		return fmt.Errorf("save hash cache: %w", err)
	}
	c.mu.Lock()
	c.saved = max(c.saved, gen)
	c.mu.Unlock()
	return nil
}

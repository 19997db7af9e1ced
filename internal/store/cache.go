package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	Path  string    `json:"path"`
	Stamp fileStamp `json:"stamp"`
	Used  int64     `json:"used"` // unix seconds of the last Lookup hit or Put
	// Info is the prototype JSON, in the file only: re-validated on load
	// into info and dropped, made again from info on save, so memory holds
	// one form (100,000 files would otherwise keep ~35 MB of JSON).
	Info json.RawMessage `json:"info"`

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
	f, err := os.Open(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			slog.Warn("hash cache unreadable, starting empty", "path", path, "err", err)
		}
		return c, nil
	}
	defer f.Close()
	entries, err := decodeCache(f)
	if err != nil {
		slog.Warn("hash cache corrupt, starting empty", "path", path, "err", err)
		return c, nil
	}
	c.entries = entries
	return c, nil
}

// decodeCache reads a cache file entry by entry, checking each, and the
// checksum at the end: a big cache (100,000 files are ~40 MB) is never held
// whole, only the entries it yields.
func decodeCache(r io.Reader) (map[string]*cacheEntry, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, cacheHeader) {
		return nil, errors.New("not a p2pcdn hash cache")
	}
	want, err := strconv.ParseUint(strings.TrimSuffix(head[len(cacheHeader):], "\n"), 16, 64)
	if err != nil {
		return nil, errors.New("not a p2pcdn hash cache")
	}
	// Everything the decoder reads goes through the checksum.
	sum := xxhash.New()
	dec := json.NewDecoder(io.TeeReader(br, sum))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, errors.New("not a JSON array")
	}
	entries := make(map[string]*cacheEntry)
	for dec.More() {
		e := new(cacheEntry)
		if err := dec.Decode(e); err != nil {
			return nil, err
		}
		if !filepath.IsAbs(e.Path) {
			return nil, errors.New("bad entry")
		}
		if e.info, err = content.ParseInfo(e.Info); err != nil {
			return nil, err
		}
		e.Info = nil
		entries[e.Path] = e
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
		return nil, errors.New("truncated")
	}
	if _, err := io.Copy(sum, br); err != nil { // the rest of the body, unread yet
		return nil, err
	}
	if sum.Sum64() != want {
		return nil, errors.New("checksum mismatch")
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
// metadata was fi. The cache keeps info itself, not a copy (a seeder of
// 100,000 files would hold each dictionary twice): the caller must not
// change it afterwards.
func (c *HashCache) Put(path string, fi fs.FileInfo, info *content.Info) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[abs] = &cacheEntry{Path: abs, Stamp: stampOf(fi), Used: time.Now().Unix(), info: info}
	c.gen++
}

// writeCacheBody writes entries as a JSON array, one entry at a time.
func writeCacheBody(w io.Writer, entries []cacheEntry) error {
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	for i, e := range entries {
		raw, err := e.info.MarshalJSON()
		if err != nil {
			return err
		}
		e.Info = raw
		b, err := json.Marshal(&e)
		if err != nil {
			return err
		}
		if i > 0 {
			b = append([]byte{','}, b...)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "]")
	return err
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
	// A snapshot of values: Lookup may touch Used while we write.
	entries := make([]cacheEntry, 0, len(c.entries))
	for _, e := range c.entries {
		if e.Used >= cutoff {
			entries = append(entries, *e)
		}
	}
	c.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("save hash cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), filepath.Base(c.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save hash cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	// The body is written entry by entry, twice: once into the checksum
	// that heads the file, then into the file, so no copy of the whole
	// body (tens of MB for a big tree) is ever held.
	sum := xxhash.New()
	err = writeCacheBody(sum, entries)
	w := bufio.NewWriterSize(tmp, 64<<10)
	if err == nil {
		_, err = fmt.Fprintf(w, "%s%x\n", cacheHeader, sum.Sum64())
	}
	if err == nil {
		err = writeCacheBody(w, entries)
	}
	if err == nil {
		err = w.Flush()
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

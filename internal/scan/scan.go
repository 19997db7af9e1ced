// Package scan finds the shareable files under the paths a user names and
// hashes them, using the hash cache so unchanged files are not read again.
//
// Symbolic links: a named path is always followed. Inside directories, links
// to regular files are followed, links to directories are skipped with a
// warning, so a walk can neither loop nor wander outside the named trees.
package scan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/store"
)

// Entry is one shareable file.
type Entry struct {
	Path string // as found: a named path or joined below one
	// Rel is the path a manifest gives the file: relative to the named
	// directory it was found under, slash-separated; a named file's base
	// name.
	Rel    string
	Info   *content.Info // its info dictionary; FileName is the base name
	Cached bool          // Info came from the hash cache, the file was not read
	Stat   fs.FileInfo   // the file's metadata when it was hashed (or looked up)
}

// Options tune Files. The zero value hashes everything without a cache.
type Options struct {
	Cache    *store.HashCache             // nil = no cache
	Progress func(n int64)                // bytes hashed (may be nil)
	Warn     func(path string, err error) // skipped files inside directories (may be nil)

	// hashFile replaces content.HashFileStat in tests, to count reads.
	hashFile func(ctx context.Context, path string, progress func(int64)) (*content.Info, fs.FileInfo, error)
}

// candidate is a file found by the walk, not hashed yet.
type candidate struct {
	path  string
	rel   string
	fi    fs.FileInfo
	named bool // the user named this file itself
}

// Files walks paths (files and directories, recursively) and returns their
// shareable files with info dictionaries, in a deterministic order: named
// paths in the order given, directory contents in lexical order, each file
// once. It returns a joined error for every named path that could not be
// hashed at all; files skipped inside directories (empty, special,
// unreadable, partial downloads, symlinked directories) go to opt.Warn.
func Files(ctx context.Context, paths []string, opt Options) ([]Entry, error) {
	var entries []Entry
	err := Walk(ctx, paths, opt, func(e Entry) error {
		entries = append(entries, e)
		return nil
	})
	return entries, err
}

// Walk is Files without the list: it hands each file to fn as soon as it is
// hashed, so a caller can print and serve a file while the next is hashed,
// and memory does not grow with the tree. An error from fn stops the walk
// and is returned.
func Walk(ctx context.Context, paths []string, opt Options, fn func(Entry) error) error {
	hash := opt.hashFile
	if hash == nil {
		hash = content.HashFileStat
	}
	var fnErr error
	var errs []error
	fail := func(err error) { errs = append(errs, err) }
	find(ctx, paths, opt.Warn, fail, func(c candidate) bool {
		if opt.Cache != nil {
			if info, ok := opt.Cache.Lookup(c.path, c.fi); ok {
				fnErr = fn(Entry{Path: c.path, Rel: c.rel, Info: info, Cached: true, Stat: c.fi})
				return fnErr == nil
			}
		}
		info, fi, err := hash(ctx, c.path, opt.Progress)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			if c.named {
				fail(err)
			} else {
				warn(opt.Warn, c.path, err)
			}
			return true
		}
		if opt.Cache != nil {
			opt.Cache.Put(c.path, fi, info)
		}
		fnErr = fn(Entry{Path: c.path, Rel: c.rel, Info: info, Stat: fi})
		return fnErr == nil
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if fnErr != nil {
		return fnErr
	}
	return errors.Join(errs...)
}

// TotalSize returns how many bytes Files would read for paths: the sizes of
// the shareable files that the cache (if any) does not already know. Use it
// to decide on and size a progress bar.
func TotalSize(ctx context.Context, paths []string, cache *store.HashCache) int64 {
	var n int64
	find(ctx, paths, nil, func(error) {}, func(c candidate) bool {
		if cache != nil {
			if _, ok := cache.Lookup(c.path, c.fi); ok {
				return true
			}
		}
		n += c.fi.Size()
		return true
	})
	return n
}

func warn(w func(string, error), path string, err error) {
	if w != nil {
		w(path, err)
	}
}

// find hands visit the candidate files under paths, each once, until visit
// returns false; named paths that are not shareable go to fail.
func find(ctx context.Context, paths []string, w func(string, error), fail func(error), visit func(candidate) bool) {
	// One walk meets each file once: only several named paths can name
	// one file twice, and only then is a set of every path worth its
	// memory (100,000 files are ~10 MB of paths).
	var seen map[string]bool
	if len(paths) > 1 {
		seen = make(map[string]bool)
	}
	stopped := false
	add := func(c candidate) bool {
		if seen != nil {
			abs, err := filepath.Abs(c.path)
			if err != nil {
				abs = c.path
			}
			if seen[abs] {
				return true
			}
			seen[abs] = true
		}
		if !visit(c) {
			stopped = true
		}
		return !stopped
	}
	for _, p := range paths {
		if ctx.Err() != nil || stopped {
			return
		}
		fi, err := os.Stat(p)
		if err != nil {
			fail(fmt.Errorf("%s: %w", p, unwrapPathError(err)))
			continue
		}
		if fi.IsDir() {
			n := 0
			walkDir(ctx, p, w, func(c candidate) bool { n++; return add(c) })
			if n == 0 && ctx.Err() == nil {
				warn(w, p, errors.New("no shareable files in this directory"))
			}
			continue
		}
		if err := shareable(fi); err != nil {
			fail(fmt.Errorf("%s: %w", p, err))
			continue
		}
		add(candidate{path: p, rel: filepath.Base(p), fi: fi, named: true})
	}
}

func walkDir(ctx context.Context, root string, w func(string, error), add func(candidate) bool) {
	errStop := errors.New("stop")
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			warn(w, path, unwrapPathError(err))
			return nil // WalkDir skips what it could not read
		}
		if d.IsDir() {
			return nil
		}
		if strings.HasSuffix(path, store.PartSuffix) || strings.HasSuffix(path, store.StateSuffix) ||
			strings.HasSuffix(path, store.StateSuffix+".tmp") {
			warn(w, path, errors.New("skipped: unfinished download"))
			return nil
		}
		fi, err := os.Stat(path) // follows a symlink to its target
		if err != nil {
			warn(w, path, unwrapPathError(err))
			return nil
		}
		if fi.IsDir() { // only reachable through a symlink
			warn(w, path, errors.New("skipped: symbolic link to a directory"))
			return nil
		}
		if err := shareable(fi); err != nil {
			warn(w, path, err)
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			rel = filepath.Base(path)
		}
		if !add(candidate{path: path, rel: filepath.ToSlash(rel), fi: fi}) {
			return errStop
		}
		return nil
	})
}

// shareable reports why a file that is not a directory cannot be shared.
func shareable(fi fs.FileInfo) error {
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("skipped: not a regular file (%s)", fi.Mode().Type())
	case fi.Size() == 0:
		return content.ErrEmptyFile
	}
	return nil
}

// unwrapPathError drops the *PathError wrapper (its path is already in our
// message) so errors read "x: no such file or directory".
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

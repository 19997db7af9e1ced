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
	Path   string        // as found: a named path or joined below one
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
	cands, errs := find(ctx, paths, opt.Warn)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	hash := opt.hashFile
	if hash == nil {
		hash = content.HashFileStat
	}
	var entries []Entry
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return entries, err
		}
		if opt.Cache != nil {
			if info, ok := opt.Cache.Lookup(c.path, c.fi); ok {
				entries = append(entries, Entry{Path: c.path, Info: info, Cached: true, Stat: c.fi})
				continue
			}
		}
		info, fi, err := hash(ctx, c.path, opt.Progress)
		if err != nil {
			if ctx.Err() != nil {
				return entries, ctx.Err()
			}
			if c.named {
				errs = append(errs, err)
			} else {
				warn(opt.Warn, c.path, err)
			}
			continue
		}
		if opt.Cache != nil {
			opt.Cache.Put(c.path, fi, info)
		}
		entries = append(entries, Entry{Path: c.path, Info: info, Stat: fi})
	}
	return entries, errors.Join(errs...)
}

// TotalSize returns how many bytes Files would read for paths: the sizes of
// the shareable files that the cache (if any) does not already know. Use it
// to decide on and size a progress bar.
func TotalSize(ctx context.Context, paths []string, cache *store.HashCache) int64 {
	cands, _ := find(ctx, paths, nil)
	var n int64
	for _, c := range cands {
		if cache != nil {
			if _, ok := cache.Lookup(c.path, c.fi); ok {
				continue
			}
		}
		n += c.fi.Size()
	}
	return n
}

func warn(w func(string, error), path string, err error) {
	if w != nil {
		w(path, err)
	}
}

// find lists the candidate files under paths, with errors for named paths
// that are not shareable.
func find(ctx context.Context, paths []string, w func(string, error)) ([]candidate, []error) {
	var cands []candidate
	var errs []error
	seen := make(map[string]bool)
	add := func(c candidate) {
		abs, err := filepath.Abs(c.path)
		if err != nil {
			abs = c.path
		}
		if !seen[abs] {
			seen[abs] = true
			cands = append(cands, c)
		}
	}
	for _, p := range paths {
		if ctx.Err() != nil {
			break
		}
		fi, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, unwrapPathError(err)))
			continue
		}
		if fi.IsDir() {
			before := len(cands)
			walkDir(ctx, p, w, add)
			if len(cands) == before {
				warn(w, p, errors.New("no shareable files in this directory"))
			}
			continue
		}
		if err := shareable(fi); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		add(candidate{path: p, fi: fi, named: true})
	}
	return cands, errs
}

func walkDir(ctx context.Context, root string, w func(string, error), add func(candidate)) {
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
		add(candidate{path: path, fi: fi})
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

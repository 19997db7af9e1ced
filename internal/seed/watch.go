package seed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/p2pcdn/p2pcdn/internal/scan"
	"github.com/p2pcdn/p2pcdn/internal/store"
)

// ChangeKind says what happened to a watched file.
type ChangeKind int

const (
	Added   ChangeKind = iota // a new file is seeded
	Changed                   // a seeded file's content changed: new hash, old one finished
	Removed                   // a seeded file went away: its hash is finished
)

func (k ChangeKind) String() string {
	switch k {
	case Added:
		return "added"
	case Changed:
		return "changed"
	case Removed:
		return "removed"
	}
	return "?"
}

// Change is one change Watch picked up.
type Change struct {
	Kind    ChangeKind
	Path    string
	Entry   *scan.Entry // the file now (Added, Changed)
	OldHash string      // the hash no longer seeded for Path (Changed, Removed)
}

// Defaults of the watcher.
const (
	DefaultDebounce   = 500 * time.Millisecond
	DefaultMaxWatches = 100_000
)

// ErrWatchLimit: a directory could not be watched because a limit on
// watches (ours, MaxWatches, or the operating system's) was reached.
var ErrWatchLimit = errors.New("too many directories to watch")

// watcher follows the seeded paths with fsnotify. Changes are debounced per
// path: a path is looked at again once it has been quiet for Debounce, so a
// file being written is hashed once, when it is done.
type watcher struct {
	s        *seeder
	fw       *fsnotify.Watcher
	debounce time.Duration
	max      int
	roots    []string        // named directories, cleaned
	files    map[string]bool // named files, cleaned
	watched  map[string]bool // directories with a watch
	dirty    map[string]time.Time
}

// newWatcher watches every directory under the named directories (and the
// folder of each named file). Hitting a watch limit here is an error that
// says which limit and how to raise it.
func (s *seeder) newWatcher() (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("--watch: %w", limitHint(err))
	}
	w := &watcher{
		s: s, fw: fw,
		debounce: orDefault(s.cfg.Debounce, DefaultDebounce),
		max:      orDefault(s.cfg.MaxWatches, DefaultMaxWatches),
		files:    make(map[string]bool),
		watched:  make(map[string]bool),
		dirty:    make(map[string]time.Time),
	}
	for _, p := range s.cfg.Paths {
		p = filepath.Clean(p)
		fi, err := os.Stat(p)
		if err != nil {
			continue // warned about by the first scan
		}
		if fi.IsDir() {
			w.roots = append(w.roots, p)
			err = w.addTree(p)
		} else {
			w.files[p] = true
			err = w.add(filepath.Dir(p))
		}
		if err != nil {
			fw.Close()
			return nil, err
		}
	}
	return w, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (w *watcher) close() { w.fw.Close() }

// add watches one directory.
func (w *watcher) add(dir string) error {
	if w.watched[dir] {
		return nil
	}
	if len(w.watched) >= w.max {
		return fmt.Errorf("cannot watch %s: %w (the limit is %d; seed fewer directories or raise --max-watches)",
			dir, ErrWatchLimit, w.max)
	}
	if err := w.fw.Add(dir); err != nil {
		return fmt.Errorf("cannot watch %s: %w", dir, limitHint(err))
	}
	w.watched[dir] = true
	return nil
}

// addTree watches root and every directory below it; like the scan, it
// does not follow links to directories.
func (w *watcher) addTree(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // the scan warns about what it cannot read
		}
		if !d.IsDir() {
			return nil
		}
		return w.add(path)
	})
}

// limitHint explains the operating system's watch limits.
func limitHint(err error) error {
	if runtime.GOOS != "linux" {
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("%w: %w", ErrWatchLimit, err)
		}
		return err
	}
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: the system's limit of inotify watches is reached (fs.inotify.max_user_watches = %s); "+
			"raise it, e.g. sudo sysctl fs.inotify.max_user_watches=524288", ErrWatchLimit, procValue("max_user_watches"))
	case errors.Is(err, syscall.EMFILE):
		return fmt.Errorf("%w: the system's limit of inotify instances is reached (fs.inotify.max_user_instances = %s); "+
			"raise it, e.g. sudo sysctl fs.inotify.max_user_instances=1024", ErrWatchLimit, procValue("max_user_instances"))
	}
	return err
}

func procValue(name string) string {
	b, err := os.ReadFile("/proc/sys/fs/inotify/" + name)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// run handles events until ctx ends.
func (w *watcher) run(ctx context.Context) {
	tick := time.NewTicker(max(w.debounce/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fw.Events:
			if !ok {
				return
			}
			w.onEvent(ev)
		case err, ok := <-w.fw.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost: look at everything again.
				w.s.log.Warn("--watch: too many changes at once, rescanning the seeded paths")
				for _, r := range w.roots {
					w.mark(r)
				}
				for f := range w.files {
					w.mark(f)
				}
				continue
			}
			w.s.log.Warn("--watch", "err", err)
		case now := <-tick.C:
			w.flush(ctx, now)
		}
	}
}

// onEvent marks the path an event is about, if it is one we seed.
func (w *watcher) onEvent(ev fsnotify.Event) {
	p := filepath.Clean(ev.Name)
	if unfinished(p) || !w.covers(p) {
		return
	}
	w.mark(p)
}

// covers reports whether p is a named file or inside a named directory.
func (w *watcher) covers(p string) bool {
	if w.files[p] {
		return true
	}
	for _, r := range w.roots {
		if within(p, r) {
			return true
		}
	}
	return false
}

func (w *watcher) mark(p string) { w.dirty[p] = time.Now() }

// within reports whether p is dir or inside it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) || dir == "."
}

func unfinished(p string) bool {
	return strings.HasSuffix(p, store.PartSuffix) || strings.HasSuffix(p, store.StateSuffix) ||
		strings.HasSuffix(p, store.StateSuffix+".tmp")
}

// flush looks again at the paths quiet for the debounce time.
func (w *watcher) flush(ctx context.Context, now time.Time) {
	var ready []string
	for p, t := range w.dirty {
		if now.Sub(t) >= w.debounce {
			ready = append(ready, p)
			delete(w.dirty, p)
		}
	}
	for _, p := range ready {
		if ctx.Err() != nil {
			return
		}
		w.look(ctx, p)
	}
	if len(ready) > 0 && w.s.cfg.Cache != nil {
		if err := w.s.cfg.Cache.Save(); err != nil {
			w.s.log.Debug("could not save the hash cache", "err", err)
		}
	}
}

// look brings the table in line with what is at p now: a file (hashed
// and announced if new or changed), a directory (watched, its files
// looked at), or nothing (what was seeded there is finished).
func (w *watcher) look(ctx context.Context, p string) {
	fi, err := os.Stat(p)
	if err != nil {
		// Gone, or no longer readable: p and anything seeded below it.
		for _, q := range w.s.tab.pathsUnder(p) {
			w.removed(ctx, q)
		}
		for d := range w.watched {
			if within(d, p) {
				w.fw.Remove(d) // already gone with the directory, usually
				delete(w.watched, d)
			}
		}
		return
	}
	if fi.IsDir() {
		if !w.files[p] && w.covers(p) {
			if err := w.addTree(p); err != nil {
				w.s.warn(p, err) // the files there are still seeded, only not followed
			}
		}
		// Files seeded below it that are gone (a rename of the directory
		// reports the old name; a rescan comes here with a root).
		seen := make(map[string]bool)
		scan.Walk(ctx, []string{p}, scan.Options{Cache: w.s.cfg.Cache}, func(e scan.Entry) error {
			seen[filepath.Clean(e.Path)] = true
			w.present(ctx, e)
			return nil
		})
		for _, q := range w.s.tab.pathsUnder(p) {
			if !seen[q] {
				if _, err := os.Stat(q); err != nil {
					w.removed(ctx, q)
				}
			}
		}
		return
	}
	var entry *scan.Entry
	walkErr := scan.Walk(ctx, []string{p}, scan.Options{Cache: w.s.cfg.Cache}, func(e scan.Entry) error {
		entry = &e
		return nil
	})
	if entry == nil {
		// Not shareable (emptied, a special file): no longer seeded.
		if _, ok := w.s.tab.hashOf(p); ok {
			w.removed(ctx, p)
		}
		if walkErr != nil && ctx.Err() == nil {
			w.s.warn("", walkErr)
		}
		return
	}
	entry.Path = p
	entry.Rel = w.rel(p)
	w.present(ctx, *entry)
}

// rel is p's path relative to the named directory it is in.
func (w *watcher) rel(p string) string {
	for _, r := range w.roots {
		if within(p, r) {
			if rel, err := filepath.Rel(r, p); err == nil {
				return filepath.ToSlash(rel)
			}
		}
	}
	return filepath.Base(p)
}

// present seeds the file e, replacing what was seeded at its path.
func (w *watcher) present(ctx context.Context, e scan.Entry) {
	p := filepath.Clean(e.Path)
	e.Path = p
	old, had := w.s.tab.hashOf(p)
	if had && old == e.Info.FullHash {
		return // touched, not changed
	}
	if had {
		if h, gone := w.s.tab.remove(p); gone {
			w.finish(ctx, h)
		}
	}
	if _, dup := w.s.tab.put(p, e.Info, e.Stat.ModTime()); dup {
		return // the same content is seeded from another path already
	}
	w.s.queue(e.Info.FullHash)
	kind := Added
	if had {
		kind = Changed
	}
	if w.s.cfg.Changed != nil {
		w.s.cfg.Changed(Change{Kind: kind, Path: p, Entry: &e, OldHash: old})
	}
}

// removed stops seeding what was at p.
func (w *watcher) removed(ctx context.Context, p string) {
	h, gone := w.s.tab.remove(p)
	if h == "" {
		return
	}
	if gone {
		w.finish(ctx, h)
	} else {
		w.s.closeHash(h) // it is served from another path from now on
	}
	if w.s.cfg.Changed != nil {
		w.s.cfg.Changed(Change{Kind: Removed, Path: p, OldHash: h})
	}
}

// finish closes hash's torrent and tells the mediator.
func (w *watcher) finish(ctx context.Context, hash string) {
	w.s.closeHash(hash)
	if err := w.s.client.Finish(ctx, hash); err != nil && ctx.Err() == nil {
		w.s.log.Debug("finish", "err", err)
	}
}

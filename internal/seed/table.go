package seed

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/peering"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/store"
	"github.com/p2pcdn/p2pcdn/internal/swarm"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

// file is a seeded file at rest: what it takes to serve it later.
type file struct {
	path string
	info *content.Info
	mod  int64 // modification time (unix ns) when hashed: a later change is not served; 0 unknown
}

// table maps each seeded hash to its file. With tracking (Watch) it also
// maps each path to its hash, to act on changes by path, and remembers other
// paths with the same content, served if the first one goes.
type table struct {
	mu     sync.Mutex
	byHash map[string]*file
	byPath map[string]string   // nil without tracking
	alts   map[string][]string // by hash; tracking only
}

func newTable(track bool) *table {
	t := &table{byHash: make(map[string]*file)}
	if track {
		t.byPath = make(map[string]string)
		t.alts = make(map[string][]string)
	}
	return t
}

// put adds path with info. For content already seeded it reports the path
// that serves it and dup (and, tracking, remembers path as an alternative).
func (t *table) put(path string, info *content.Info, mod time.Time) (first string, dup bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := info.FullHash
	if f := t.byHash[h]; f != nil {
		if t.byPath != nil && f.path != path && !slices.Contains(t.alts[h], path) {
			t.alts[h] = append(t.alts[h], path)
			t.byPath[path] = h
		}
		return f.path, true
	}
	t.byHash[h] = &file{path: path, info: info, mod: mod.UnixNano()}
	if t.byPath != nil {
		t.byPath[path] = h
	}
	return "", false
}

// remove forgets path. It returns the path's hash, and gone when no other
// path holds that content (so the hash is no longer seeded).
func (t *table) remove(path string) (hash string, gone bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, ok := t.byPath[path]
	if !ok {
		return "", false
	}
	delete(t.byPath, path)
	f := t.byHash[h]
	if f == nil {
		return h, true
	}
	alts := t.alts[h]
	if i := slices.Index(alts, path); i >= 0 {
		t.alts[h] = slices.Delete(alts, i, i+1)
		return h, false
	}
	if len(alts) > 0 {
		f.path, f.mod = alts[0], 0 // unknown: the alternative is checked when opened
		t.alts[h] = alts[1:]
		return h, false
	}
	delete(t.alts, h)
	delete(t.byHash, h)
	return h, true
}

// hashOf returns the hash seeded for path (tracking only).
func (t *table) hashOf(path string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, ok := t.byPath[path]
	return h, ok
}

// paths lists the tracked paths under dir (dir itself included).
func (t *table) pathsUnder(dir string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for p := range t.byPath {
		if within(p, dir) {
			out = append(out, p)
		}
	}
	return out
}

func (t *table) get(hash string) (file, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.byHash[hash]
	if f == nil {
		return file{}, false
	}
	return *f, true
}

func (t *table) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byHash)
}

func (t *table) hashes() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Collect(maps.Keys(t.byHash))
}

// live is a file being served: open, with a torrent and its peers.
type live struct {
	hash      string
	sf        *store.SeedFile
	torrent   *swarm.Torrent
	link      *peering.Link
	idleSince time.Time // zero while a peer is there
}

func (l *live) close() {
	l.link.Close()
	l.torrent.Close()
	l.sf.Close()
}

// liveSet is the files being served. Only serve's goroutine opens them;
// closeHash (Watch) and closeAll may close them from others.
type liveSet struct {
	mu sync.Mutex
	m  map[string]*live
}

// serve opens a file's torrent when a peer's offer for it arrives, hands
// that peer to it, and closes torrents that stayed without peers for
// IdleTimeout, until ctx ends.
func (s *seeder) serve(ctx context.Context) {
	every := max(s.cfg.IdleTimeout/4, 50*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	events := s.client.Events()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if sig, ok := ev.(mediatorclient.Signal); ok {
				s.onSignal(sig)
			}
		case now := <-tick.C:
			s.reap(now)
		}
	}
}

// onSignal routes a signal that no open torrent took: an offer for a seeded
// file opens it.
func (s *seeder) onSignal(sig mediatorclient.Signal) {
	s.live.mu.Lock()
	l := s.live.m[sig.Hash]
	s.live.mu.Unlock()
	if l == nil {
		parsed, err := rtc.ParseSignal(sig.Data)
		if err != nil || parsed.Type != rtc.SignalOffer {
			return // a late answer or candidate for a torrent closed since
		}
		if l, err = s.liveFor(sig.Hash); err != nil {
			s.log.Debug("not serving an offer", "hash", sig.Hash, "from", sig.From, "err", err)
			return
		}
	}
	l.link.Deliver(sig)
}

// onRequest is the Host's question when a peer opens a channel for a file
// on a connection it has with us: open it if we seed it.
func (s *seeder) onRequest(hash string) bool {
	_, err := s.liveFor(hash)
	if err != nil {
		s.log.Debug("refusing a channel", "hash", hash, "err", err)
	}
	return err == nil
}

// errNotSeeded: a peer asked for a hash we do not seed.
var errNotSeeded = errors.New("not a file we seed")

// errBusy: MaxOpen files are served, each with a peer.
var errBusy = errors.New("serving the most files at once already, each to a peer")

// liveFor returns hash's open torrent, opening it if needed (closing the
// longest idle one when MaxOpen are open).
func (s *seeder) liveFor(hash string) (*live, error) {
	s.live.mu.Lock()
	if l := s.live.m[hash]; l != nil {
		s.live.mu.Unlock()
		return l, nil
	}
	f, ok := s.tab.get(hash)
	if !ok {
		s.live.mu.Unlock()
		return nil, errNotSeeded
	}
	if s.live.m == nil {
		s.live.m = make(map[string]*live)
	}
	var evict *live
	if len(s.live.m) >= s.cfg.MaxOpen {
		for _, l := range s.live.m {
			if !l.idleSince.IsZero() && (evict == nil || l.idleSince.Before(evict.idleSince)) {
				evict = l
			}
		}
		if evict == nil {
			s.live.mu.Unlock()
			return nil, errBusy
		}
		delete(s.live.m, evict.hash)
	}
	// Opening under the lock: an offer (serve) and a channel (the Host) may
	// ask for one file at once.
	l, err := s.open(f)
	if err == nil {
		s.live.m[hash] = l
	}
	n := len(s.live.m)
	s.live.mu.Unlock()
	if evict != nil {
		evict.close()
	}
	if err != nil {
		s.log.Warn("cannot serve a file a peer asked for", "path", f.path, "err", err)
		return nil, err
	}
	s.log.Debug("serving", "path", f.path, "open", n)
	return l, nil
}

// open opens f and joins its torrent to the Host.
func (s *seeder) open(f file) (*live, error) {
	var sf *store.SeedFile
	var err error
	if f.mod == 0 {
		sf, err = store.OpenSeed(f.path, f.info)
	} else {
		sf, err = store.OpenSeedSince(f.path, f.info, time.Unix(0, f.mod))
	}
	if err != nil {
		return nil, err
	}
	ih, err := wire.DecodeID(f.info.FullHash)
	if err != nil {
		sf.Close()
		return nil, err
	}
	pid, err := wire.DecodeID(s.client.PeerID())
	if err != nil {
		sf.Close()
		return nil, err
	}
	t, err := swarm.New(swarm.Config{
		InfoHash: ih,
		PeerID:   pid,
		Info:     f.info,
		Open:     func(*content.Info) (swarm.PieceReader, error) { return sf, nil },
		Logger:   s.log.With("file", f.info.FileName),
	})
	if err != nil {
		sf.Close()
		return nil, fmt.Errorf("serve %s: %w", f.path, err)
	}
	name := content.SafeName(f.info.FileName)
	link := s.host.Join(peering.LinkConfig{
		Hash: f.info.FullHash, Torrent: t,
		OnFailure: func(fl peering.Failure) { s.report.failed(name, fl) },
	})
	return &live{hash: f.info.FullHash, sf: sf, torrent: t, link: link}, nil
}

// reap closes the torrents that have had no peer for IdleTimeout.
func (s *seeder) reap(now time.Time) {
	var idle []*live
	s.live.mu.Lock()
	for h, l := range s.live.m {
		if l.link.Sessions() > 0 || l.torrent.Stats().Peers > 0 {
			l.idleSince = time.Time{}
			continue
		}
		if l.idleSince.IsZero() {
			l.idleSince = now
			continue
		}
		if now.Sub(l.idleSince) >= s.cfg.IdleTimeout {
			delete(s.live.m, h)
			idle = append(idle, l)
		}
	}
	s.live.mu.Unlock()
	for _, l := range idle {
		s.log.Debug("closing an idle file", "hash", l.hash)
		l.close()
	}
}

// openCount returns how many files are being served.
func (s *seeder) openCount() int {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	return len(s.live.m)
}

// closeHash stops serving hash (its file changed or went away).
func (s *seeder) closeHash(hash string) {
	s.live.mu.Lock()
	l := s.live.m[hash]
	delete(s.live.m, hash)
	s.live.mu.Unlock()
	if l != nil {
		l.close()
	}
}

func (s *seeder) closeAll() {
	s.live.mu.Lock()
	all := slices.Collect(maps.Values(s.live.m))
	s.live.m = nil
	s.live.mu.Unlock()
	for _, l := range all {
		l.close()
	}
}

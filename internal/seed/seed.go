// Package seed implements `p2pcdn seed`: it hashes the files under some
// paths (with the hash cache), announces each to a mediator and serves its
// pieces to every peer that asks, until its context ends.
package seed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/peering"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/scan"
	"github.com/p2pcdn/p2pcdn/internal/store"
	"github.com/p2pcdn/p2pcdn/internal/swarm"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

// Config configures Run.
type Config struct {
	Paths     []string
	Mediator  string // mediator URL
	Transport *rtc.Transport
	Cache     *store.HashCache // nil: hash every file
	PeerID    string           // random when empty
	Logger    *slog.Logger
	Progress  func(n int64)                // bytes hashed
	Warn      func(path string, err error) // files skipped
	// Ready is called once every file is announced, with the files served.
	Ready func(files []scan.Entry)
}

// finishTimeout bounds the goodbye to the mediator once seeding ends.
const finishTimeout = 2 * time.Second

// ErrNothingToSeed is returned when the paths hold no shareable file.
var ErrNothingToSeed = errors.New("nothing to seed: no shareable files found")

// Run seeds until ctx ends, then tells the mediator it stopped and returns
// nil. It fails early if a named path cannot be hashed or the mediator cannot
// be reached.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	entries, err := scan.Files(ctx, cfg.Paths, scan.Options{Cache: cfg.Cache, Progress: cfg.Progress, Warn: cfg.Warn})
	if err != nil {
		return err
	}
	if cfg.Cache != nil {
		if err := cfg.Cache.Save(); err != nil {
			log.Warn("could not save the hash cache", "err", err)
		}
	}
	entries = uniqueByHash(entries, cfg.Warn)
	if len(entries) == 0 {
		return ErrNothingToSeed
	}

	client, err := mediatorclient.Dial(ctx, cfg.Mediator, mediatorclient.Options{PeerID: cfg.PeerID, Logger: log})
	if err != nil {
		return fmt.Errorf("connect to mediator %s: %w", cfg.Mediator, err)
	}
	defer client.Close()

	var served []*file
	defer func() {
		for _, f := range served {
			f.close()
		}
	}()
	for _, e := range entries {
		f, err := open(ctx, e, client, cfg.Transport, log)
		if err != nil {
			return err
		}
		served = append(served, f)
		if err := client.Announce(ctx, e.Info.FullHash); err != nil && !errors.Is(err, mediatorclient.ErrNotConnected) {
			return fmt.Errorf("announce %s: %w", e.Path, err)
		}
	}
	if cfg.Ready != nil {
		cfg.Ready(entries)
	}
	<-ctx.Done()

	// Say goodbye on a fresh context: ctx is already over.
	bye, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	for _, f := range served {
		if err := client.Finish(bye, f.hash); err != nil {
			log.Debug("finish", "hash", f.hash, "err", err)
			break
		}
	}
	return nil
}

// file is one seeded file: its store, torrent and mediator link.
type file struct {
	hash    string
	store   *store.SeedFile
	torrent *swarm.Torrent
	link    *peering.Link
}

func open(ctx context.Context, e scan.Entry, client *mediatorclient.Client, tr *rtc.Transport, log *slog.Logger) (*file, error) {
	sf, err := store.OpenSeedSince(e.Path, e.Info, e.Stat.ModTime())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", e.Path, err)
	}
	ih, err := wire.DecodeID(e.Info.FullHash)
	if err != nil {
		sf.Close()
		return nil, err
	}
	pid, err := wire.DecodeID(client.PeerID())
	if err != nil {
		sf.Close()
		return nil, err
	}
	t, err := swarm.New(swarm.Config{
		InfoHash: ih,
		PeerID:   pid,
		Info:     e.Info,
		Open:     func(*content.Info) (swarm.PieceReader, error) { return sf, nil },
		Logger:   log.With("file", e.Info.FileName),
	})
	if err != nil {
		sf.Close()
		return nil, fmt.Errorf("serve %s: %w", e.Path, err)
	}
	link := peering.Join(ctx, peering.Config{
		Hash: e.Info.FullHash, Client: client, Transport: tr, Torrent: t, Logger: log,
	})
	return &file{hash: e.Info.FullHash, store: sf, torrent: t, link: link}, nil
}

func (f *file) close() {
	f.link.Close()
	f.torrent.Close()
	f.store.Close()
}

// uniqueByHash keeps the first of several files with the same content.
func uniqueByHash(entries []scan.Entry, warn func(string, error)) []scan.Entry {
	seen := make(map[string]string, len(entries))
	out := entries[:0]
	for _, e := range entries {
		if first, dup := seen[e.Info.FullHash]; dup {
			if warn != nil {
				warn(e.Path, fmt.Errorf("same content as %s, seeded once", first))
			}
			continue
		}
		seen[e.Info.FullHash] = e.Path
		out = append(out, e)
	}
	return out
}

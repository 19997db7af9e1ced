// Package seed implements `p2pcdn seed`: it hashes the files under some
// paths (with the hash cache), announces each to a mediator and serves its
// pieces to every peer that asks, until its context ends.
package seed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

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
	Paths    []string
	Mediator string // mediator URL
	// Transport carries the WebRTC connections. When nil, Run makes one
	// from RTC that also uses the STUN/TURN servers the mediator hands out
	// (docs/extensions.md), and closes it when done.
	Transport *rtc.Transport
	RTC       rtc.Config
	Cache     *store.HashCache // nil: hash every file
	PeerID    string           // random when empty
	Logger    *slog.Logger
	Progress  func(n int64)                // bytes hashed
	Warn      func(path string, err error) // files skipped
	// Ready is called once every file is announced, with the files served.
	Ready func(files []scan.Entry)
	// Notice, if set, gets a line for the user about each failed attempt
	// to connect a peer, at most one per ReportEvery (the others counted in
	// the next line).
	Notice func(msg string)
}

// finishTimeout bounds the goodbye to the mediator once seeding ends.
const finishTimeout = 2 * time.Second

// ErrNothingToSeed is returned when the paths hold no shareable file.
var ErrNothingToSeed = errors.New("nothing to seed: no shareable files found")

// Run seeds until ctx ends, then tells the mediator it stopped and returns
// nil. It fails early if a named path cannot be hashed. A mediator that
// cannot be reached yet is tried again with backoff until ctx ends.
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

	// A server may boot seed and its mediator together: wait for it.
	client, err := mediatorclient.Dial(ctx, cfg.Mediator, mediatorclient.Options{PeerID: cfg.PeerID, Logger: log, Retry: true})
	if err != nil {
		return err // it names the mediator
	}
	defer client.Close()
	tr := cfg.Transport
	if tr == nil {
		if tr, err = rtc.New(withMediatorICE(cfg.RTC, client)); err != nil {
			return err
		}
		defer tr.Close()
	}

	// One Host for every file: a peer of ours fetching several gets them
	// over one connection.
	host := peering.NewHost(ctx, peering.HostConfig{Client: client, Transport: tr, Logger: log})
	defer host.Close()
	var served []*file
	defer func() {
		for _, f := range served {
			f.close()
		}
	}()
	report := &failureReport{notice: cfg.Notice}
	hashes := make([]string, 0, len(entries))
	for _, e := range entries {
		f, err := open(e, client, host, log, report)
		if err != nil {
			return err
		}
		served = append(served, f)
		hashes = append(hashes, f.hash)
	}
	// In batch events where the mediator takes them.
	if err := client.AnnounceMany(ctx, hashes); err != nil && !errors.Is(err, mediatorclient.ErrNotConnected) {
		return fmt.Errorf("announce: %w", err)
	}
	if cfg.Ready != nil {
		cfg.Ready(entries)
	}
	<-ctx.Done()

	// Say goodbye on a fresh context: ctx is already over.
	bye, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	if err := client.FinishMany(bye, hashes); err != nil {
		log.Debug("finish", "err", err)
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

func open(e scan.Entry, client *mediatorclient.Client, host *peering.Host, log *slog.Logger,
	report *failureReport) (*file, error) {
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
	name := content.SafeName(e.Info.FileName)
	link := host.Join(peering.LinkConfig{
		Hash: e.Info.FullHash, Torrent: t,
		OnFailure: func(f peering.Failure) { report.failed(name, f) },
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

// withMediatorICE adds the STUN/TURN servers the mediator hands out, fresh
// for each connection, to those cfg has.
func withMediatorICE(cfg rtc.Config, client *mediatorclient.Client) rtc.Config {
	own := cfg.ExtraICEServers
	cfg.ExtraICEServers = func() []webrtc.ICEServer {
		if own == nil {
			return client.ICEServers()
		}
		return append(own(), client.ICEServers()...)
	}
	return cfg
}

// ReportEvery is the least time between two lines about failed connection
// attempts.
const ReportEvery = 10 * time.Second

// failureReport words peering's failed attempts for the user, rate-limited.
type failureReport struct {
	notice func(string)
	now    func() time.Time // time.Now; tests set it

	mu   sync.Mutex
	last time.Time
	held int // failures since the last line
}

func (r *failureReport) failed(file string, f peering.Failure) {
	if r.notice == nil {
		return
	}
	now := time.Now
	if r.now != nil {
		now = r.now
	}
	r.mu.Lock()
	t := now()
	if !r.last.IsZero() && t.Sub(r.last) < ReportEvery {
		r.held++
		r.mu.Unlock()
		return
	}
	held := r.held
	r.held, r.last = 0, t
	r.mu.Unlock()

	who := "a downloader"
	if f.Initiator {
		who = "a peer"
	}
	msg := fmt.Sprintf("could not connect to %s of %s (peer %.8s): ", who, file, f.Peer)
	var ie *rtc.ICEError
	if errors.As(f.Err, &ie) {
		msg += ie.Error()
		if h := ie.Hint(); h != "" {
			msg += "; " + h
		}
	} else {
		msg += f.Err.Error()
	}
	if held > 0 {
		msg += fmt.Sprintf(" (%d more failed attempt(s) since the last such line)", held)
	}
	r.notice(msg)
}

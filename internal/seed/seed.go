// Package seed implements `p2pcdn seed`: it hashes the files under some
// paths (with the hash cache), announces each to a mediator as soon as it is
// hashed, and serves its pieces to every peer that asks, until its context
// ends. With Watch it follows changes to the seeded directories.
//
// A seeded file costs a table entry (hash → path and info dictionary) until
// a peer asks for it: no goroutine, no torrent, no open file. The first
// signal for its hash opens the file and a torrent for it; after a quiet
// period with no peer the torrent and the file are closed again.
package seed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/peering"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/scan"
	"github.com/p2pcdn/p2pcdn/internal/store"
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
	Progress  func(n int64) // bytes hashed
	// Warn receives what is skipped: files inside directories, named paths
	// that cannot be seeded (path "" then: the error names it), duplicates.
	Warn func(path string, err error)
	// File is called for each file as soon as it is hashed, in scan order,
	// before it is announced (announcing runs alongside hashing).
	File func(e scan.Entry)
	// Same is called instead of File for a file whose content is seeded
	// from another path already (first): seeded once, but part of the tree.
	Same func(e scan.Entry, first string)
	// Ready is called once every file found at the start is announced to
	// the mediator: seeding has started. n is the number of files served.
	Ready func(n int)
	// Watch follows the seeded directories (and named files) after the
	// first scan: files added or changed are hashed and announced, files
	// removed are finished. Changed reports each such change.
	Watch   bool
	Changed func(Change)
	// Debounce is how long a changed path must stay quiet before it is
	// hashed again (Watch). Default 500 ms.
	Debounce time.Duration
	// MaxWatches bounds the directories watched. Default 100,000.
	MaxWatches int
	// IdleTimeout is how long a file's torrent stays open with no peer.
	// Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxOpen bounds the files served at once; a request for another file
	// closes the longest idle one, or is refused when none is idle.
	// Default DefaultMaxOpen.
	MaxOpen int
	// Notice, if set, gets a line for the user about each failed attempt
	// to connect a peer, at most one per ReportEvery (the others counted in
	// the next line).
	Notice func(msg string)
}

// Defaults for Config's zero fields.
const (
	DefaultIdleTimeout = time.Minute
	DefaultMaxOpen     = 1024
)

// The pace of the seeder's mediator events: many downloaders at once each
// take an answer and trickled candidates, which the client's default pace
// (50/s, burst 50) would queue. This stays below our mediator's
// per-connection limits (100 events/s, burst 1,000).
const (
	eventRate  = 90
	eventBurst = 500
)

// finishTimeout bounds the goodbye to the mediator once seeding ends: the
// mediator forgets a peer's files when its connection closes anyway, so a
// slow goodbye (100,000 hashes) is cut short rather than waited for.
const finishTimeout = time.Second

// ErrNothingToSeed is returned when the paths hold no shareable file.
var ErrNothingToSeed = errors.New("nothing to seed: no shareable files found")

// Run seeds until ctx ends, then tells the mediator it stopped and returns
// nil. A named path that cannot be seeded is a warning; Run fails only when
// nothing can be seeded (ErrNothingToSeed, wrapping the reasons) unless
// Watch waits for files to come. A mediator that cannot be reached yet is
// tried again with backoff until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = DefaultMaxOpen
	}
	s := &seeder{cfg: cfg, log: log, tab: newTable(cfg.Watch), report: &failureReport{notice: cfg.Notice}}
	s.announceWake = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(ctx)
	// Teardown in order: stop the goroutines, then what they use.
	var bg sync.WaitGroup
	var cleanup []func()
	defer func() {
		cancel()
		bg.Wait()
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}()

	// The mediator is dialed once the first file is hashed (nothing to
	// seed never dials) and announcing runs alongside the hashing.
	dialed := make(chan struct{})
	var dialOnce sync.Once
	startDial := func() {
		dialOnce.Do(func() {
			bg.Go(func() {
				defer close(dialed)
				s.client, s.dialErr = mediatorclient.Dial(ctx, cfg.Mediator,
					mediatorclient.Options{PeerID: cfg.PeerID, Logger: log, Retry: true,
						EventRate: eventRate, EventBurst: eventBurst})
			})
		})
	}
	announced := make(chan struct{})
	bg.Go(func() {
		select {
		case <-dialed:
		case <-ctx.Done():
			return
		}
		if s.dialErr == nil {
			s.announcer(ctx, announced)
		}
	})

	walkErr := scan.Walk(ctx, cfg.Paths, scan.Options{Cache: cfg.Cache, Progress: cfg.Progress, Warn: cfg.Warn},
		func(e scan.Entry) error {
			if s.add(e) {
				startDial()
			}
			return nil
		})
	if ctx.Err() != nil {
		return s.stop(ctx, dialed, startDial)
	}
	for _, err := range unjoin(walkErr) {
		s.warn("", err)
	}
	if s.tab.len() == 0 && !cfg.Watch {
		if walkErr != nil {
			return fmt.Errorf("%w: %w", ErrNothingToSeed, walkErr)
		}
		return ErrNothingToSeed
	}
	startDial()
	s.hashingDone()
	// Saved while the last announcements go out (100,000 entries take a
	// second or two).
	if cache := cfg.Cache; cache != nil {
		if !cfg.Watch {
			// Only --watch hashes again: once saved, let the cache's copy of
			// every path and stamp go.
			cfg.Cache, s.cfg.Cache = nil, nil
		}
		bg.Go(func() {
			if err := cache.Save(); err != nil {
				log.Warn("could not save the hash cache", "err", err)
			}
		})
	}

	select {
	case <-dialed:
	case <-ctx.Done():
		return s.stop(ctx, dialed, startDial)
	}
	if s.dialErr != nil {
		return s.dialErr // it names the mediator
	}
	client := s.client
	cleanup = append(cleanup, func() { client.Close() })
	tr := cfg.Transport
	if tr == nil {
		var err error
		if tr, err = rtc.New(cfg.RTC.WithICEServers(client.ICEServers)); err != nil {
			return err
		}
		cleanup = append(cleanup, func() { tr.Close() })
	}
	s.tr = tr
	// One Host for every file: a peer of ours fetching several gets them
	// over one connection, a channel each, opened as they are asked for.
	s.host = peering.NewHost(ctx, peering.HostConfig{Client: client, Transport: tr, Logger: log})
	s.host.OnRequest(s.onRequest)
	cleanup = append(cleanup, s.host.Close, s.closeAll)
	bg.Go(func() { s.serve(ctx) })
	if cfg.Watch {
		w, err := s.newWatcher()
		if err != nil {
			return err
		}
		cleanup = append(cleanup, w.close)
		bg.Go(func() { w.run(ctx) })
	}

	select {
	case <-announced:
		if cfg.Ready != nil {
			cfg.Ready(s.tab.len())
		}
	case <-ctx.Done():
	}
	<-ctx.Done()

	// Say goodbye on a fresh context: ctx is already over.
	bye, byeCancel := context.WithTimeout(context.Background(), finishTimeout)
	defer byeCancel()
	if err := client.FinishMany(bye, s.tab.hashes()); err != nil {
		log.Debug("finish", "err", err)
	}
	return nil
}

// stop ends a Run interrupted before seeding started.
func (s *seeder) stop(ctx context.Context, dialed chan struct{}, startDial func()) error {
	startDial() // so dialed closes
	<-dialed
	if s.client != nil {
		s.client.Close()
	}
	if s.dialErr != nil && ctx.Err() != nil {
		return s.dialErr // names the mediator it waited for
	}
	return nil
}

// unjoin splits an errors.Join error into its parts.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// seeder is the state of one Run.
type seeder struct {
	cfg     Config
	log     *slog.Logger
	tab     *table
	client  *mediatorclient.Client // set before dialed closes
	dialErr error
	tr      *rtc.Transport
	host    *peering.Host
	report  *failureReport

	// Hashes wait in pending until the announcer sends them; hashing never
	// waits for the mediator.
	mu           sync.Mutex
	pending      []string
	hashed       bool // the first scan is over: announce what is left, then report
	announceWake chan struct{}

	live liveSet
}

func (s *seeder) warn(path string, err error) {
	if s.cfg.Warn != nil {
		s.cfg.Warn(path, err)
	}
}

// add puts a hashed file in the table and queues its announcement; it
// reports false for a duplicate (warned) or a file already seeded.
func (s *seeder) add(e scan.Entry) bool {
	if first, dup := s.tab.put(e.Path, e.Info, e.Stat.ModTime()); dup {
		if first != e.Path {
			s.warn(e.Path, fmt.Errorf("same content as %s, seeded once", first))
			if s.cfg.Same != nil {
				s.cfg.Same(e, first)
			}
		}
		return false
	}
	if s.cfg.File != nil {
		s.cfg.File(e)
	}
	s.queue(e.Info.FullHash)
	return true
}

func (s *seeder) queue(hash string) {
	s.mu.Lock()
	s.pending = append(s.pending, hash)
	s.mu.Unlock()
	s.wake()
}

func (s *seeder) wake() {
	select {
	case s.announceWake <- struct{}{}:
	default:
	}
}

func (s *seeder) hashingDone() {
	s.mu.Lock()
	s.hashed = true
	s.mu.Unlock()
	s.wake()
}

// announcer sends what is pending in batches as it comes, and closes
// announced once the first scan's files are all sent.
func (s *seeder) announcer(ctx context.Context, announced chan<- struct{}) {
	reported := false
	for {
		s.mu.Lock()
		batch := s.pending
		s.pending = nil
		hashed := s.hashed
		s.mu.Unlock()
		if len(batch) > 0 {
			s.log.Debug("announcing", "hashes", len(batch), "hashing_done", hashed)
		}
		for len(batch) > 0 {
			n := min(len(batch), mediatorclient.MaxBatch)
			if err := s.client.AnnounceMany(ctx, batch[:n]); err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("announce", "err", err)
			}
			batch = batch[n:]
		}
		if hashed && !reported {
			reported = true
			close(announced)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.announceWake:
		}
		// While hashing goes on, let a batch fill for a moment: events are
		// paced too, and one per file hashed would be the slower limit.
		s.mu.Lock()
		gather := !s.hashed && len(s.pending) < mediatorclient.MaxBatch
		s.mu.Unlock()
		if gather {
			t := time.NewTimer(gatherFor)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// gatherFor is how long the announcer lets hashes gather while hashing goes
// on: at most 20 events a second, each with what was hashed meanwhile.
const gatherFor = 50 * time.Millisecond

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

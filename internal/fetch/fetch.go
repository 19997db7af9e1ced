// Package fetch implements `p2pcdn get`: it finds the peers of a full hash
// through a mediator, fetches the info dictionary from them unless it was
// given, downloads and verifies every piece from several peers at once,
// re-shares what it has meanwhile, and moves the finished file into place.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/peering"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/store"
	"github.com/p2pcdn/p2pcdn/internal/swarm"
	"github.com/p2pcdn/p2pcdn/internal/timeline"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

// Errors a caller may want to tell apart.
var (
	// ErrNoPeers: no peer could be reached before the timeout.
	ErrNoPeers = errors.New("no peers found in time")
	// ErrStalled: peers were found but the download made no progress
	// (verified data) for the timeout.
	ErrStalled = errors.New("download stalled")
	// ErrVerify: the peers that sent data sent corrupt pieces or a false
	// info dictionary (and were banned), and no honest peer came in time.
	ErrVerify = errors.New("verification failed")
	// ErrUnreachable: peers were found but none could be connected (every
	// attempt failed, ICE found no path); the error says what was tried.
	ErrUnreachable = errors.New("peers found but none could be connected")
	// ErrExists: a different file exists at the target path already; it
	// is never overwritten.
	ErrExists = errors.New("target file exists")
	// ErrInterrupted: the caller's context ended before the file was
	// complete. What was verified stays in the .part file for a resume.
	ErrInterrupted = errors.New("interrupted")
)

// Defaults for Config's zero fields.
const (
	DefaultTimeout = 30 * time.Second
	// DefaultWantPeers is how many peers the downloader tries to keep.
	DefaultWantPeers = 8
	askInterval      = time.Second // steady get_peers cadence, as the prototype
	// firstAsk is the first repeat of get_peers, doubling up to askInterval:
	// a mediator that must look the hash up in the DHT answers the first
	// question with its local peers only and knows more a few ms later.
	firstAsk = 50 * time.Millisecond
)

// Config configures Run.
type Config struct {
	Hash     string        // full hash, 40 lowercase hex
	Info     *content.Info // optional; fetched from peers when nil
	Output   string        // a file path, or an existing directory; "" = current directory
	Mediator string        // mediator URL
	// Transport carries the WebRTC connections. When nil, Run makes one
	// from RTC that also uses the STUN/TURN servers the mediator hands out
	// (docs/extensions.md), and closes it when done.
	Transport *rtc.Transport
	RTC       rtc.Config
	PeerID    string // random when empty
	// Timeout gives up when no peer is found, or no progress is made, for
	// this long. Only verified data is progress: the info dictionary and
	// pieces whose hash matched.
	Timeout   time.Duration
	WantPeers int
	Logger    *slog.Logger
	// Progress is called about ten times a second while downloading.
	Progress func(Progress)
	// GetPeers (Dial) are the hashes about to be fetched: the session asks
	// the mediator for their peers as it connects, with the handshake
	// toward a mediator of ours, a round trip sooner than Get would.
	GetPeers []string
}

// Progress is a snapshot of a running download.
type Progress struct {
	Info       *content.Info // nil until known
	Have       int64         // verified bytes, resumed ones included
	Total      int64         // 0 until the info is known
	Downloaded int64         // bytes received this run
	Peers      int           // connected peers
	// Found counts the distinct peers the mediator named so far, and
	// Connecting those being dialed or answered but not connected yet.
	Found      int
	Connecting int
}

// Result describes a finished download.
type Result struct {
	Path       string
	Info       *content.Info
	Downloaded int64 // bytes received this run
	Uploaded   int64 // bytes sent to other downloaders while downloading
	Resumed    int   // pieces already on disk from an earlier run
	// ResumedBytes is how many bytes those pieces hold.
	ResumedBytes int64
	Peers        int // peers that sent us data
	Elapsed      time.Duration
	// AlreadyThere: the target held this very file (its content hashed to
	// the full hash), so nothing was downloaded and it was left as it was.
	AlreadyThere bool
}

// Run downloads cfg.Hash and returns once the file is complete, verified and
// in place. Errors wrap ErrNoPeers, ErrStalled, ErrExists or ErrInterrupted
// where they apply.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	s, err := Dial(ctx, dialConfig(cfg))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Get(ctx, cfg)
}

// dialConfig is Run's Dial configuration: it asks for cfg.Hash as it connects.
func dialConfig(cfg Config) Config {
	if len(cfg.GetPeers) == 0 {
		cfg.GetPeers = []string{cfg.Hash}
	}
	return cfg
}

func checkConfig(cfg Config) error {
	if !content.ValidHash(cfg.Hash) {
		return fmt.Errorf("%q is not a full hash (40 lowercase hex characters)", cfg.Hash)
	}
	if cfg.Info != nil && cfg.Info.FullHash != cfg.Hash {
		return fmt.Errorf("the info dictionary is for %s, not %s", cfg.Info.FullHash, cfg.Hash)
	}
	return nil
}

// The pace of a session's mediator events. Every file needs a few events
// (get_peers, an offer, trickled candidates), so a session fetching many
// files at once would wait on the client's default pace (50/s, burst 50)
// where separate processes would not. This stays below our mediator's
// per-connection limits (100 events/s, burst 1,000).
const (
	ManyEventRate  = 90
	ManyEventBurst = 500
)

// Session is one mediator connection and WebRTC transport that several
// downloads share (`p2pcdn get HASH...`). Its methods are safe for
// concurrent use.
type Session struct {
	client *mediatorclient.Client
	tr     *rtc.Transport
	ownTr  bool
	host   *peering.Host
	log    *slog.Logger
	cancel context.CancelFunc

	mu     sync.Mutex
	asked  map[string]bool // Config.GetPeers not yet taken by a Get
	active map[string]bool // hashes being fetched: one Link per hash on the Host
}

// Dial connects to cfg.Mediator as cfg.PeerID and sets up the transport
// (cfg.Transport, or one made from cfg.RTC). The other fields of cfg are
// for Get.
func Dial(ctx context.Context, cfg Config) (*Session, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	client, err := mediatorclient.Dial(ctx, cfg.Mediator, mediatorclient.Options{PeerID: cfg.PeerID, Logger: log,
		EventRate: ManyEventRate, EventBurst: ManyEventBurst, GetPeers: cfg.GetPeers})
	if err != nil {
		return nil, err // it names the mediator
	}
	s := &Session{client: client, tr: cfg.Transport, log: log, asked: make(map[string]bool)}
	for _, h := range cfg.GetPeers {
		s.asked[h] = true
	}
	if s.tr == nil {
		if s.tr, err = rtc.New(cfg.RTC.WithICEServers(client.ICEServers)); err != nil {
			client.Close()
			return nil, err
		}
		s.ownTr = true
	}
	// The Host outlives Dial's ctx (which bounds the dial only): Close ends it. It keeps ctx's values
	// (get --verbose's timeline).
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.host = peering.NewHost(hctx, peering.HostConfig{Client: client, Transport: s.tr, Logger: log})
	return s, nil
}

// Close ends the session; call it once every Get has returned.
func (s *Session) Close() {
	s.host.Close()
	s.cancel()
	if s.ownTr {
		s.tr.Close()
	}
	s.client.Close()
}

// Get downloads cfg.Hash through the session, as Run does; cfg's Mediator,
// Transport, RTC and PeerID are the session's and ignored here.
func (s *Session) Get(ctx context.Context, cfg Config) (*Result, error) {
	start := time.Now()
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.WantPeers <= 0 {
		cfg.WantPeers = DefaultWantPeers
	}
	if cfg.Logger == nil {
		cfg.Logger = s.log
	}
	log := cfg.Logger
	s.mu.Lock()
	busy := s.active[cfg.Hash]
	if !busy {
		if s.active == nil {
			s.active = make(map[string]bool)
		}
		s.active[cfg.Hash] = true
	}
	s.mu.Unlock()
	if busy {
		return nil, fmt.Errorf("%s is being fetched in this session already", cfg.Hash)
	}
	defer func() {
		s.mu.Lock()
		delete(s.active, cfg.Hash)
		s.mu.Unlock()
	}()
	if cfg.Info != nil {
		// Known content: a file already in place needs no network at all.
		if res, err := alreadyThere(ctx, cfg.Output, cfg.Info); res != nil || err != nil {
			return done(res, start), err
		}
	}
	client := s.client
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The announce goroutine below ends before the client closes.
	var announcing sync.WaitGroup
	defer func() {
		cancel()
		announcing.Wait()
	}()

	d := &download{cfg: cfg, log: log}
	ih, err := wire.DecodeID(cfg.Hash)
	if err != nil {
		return nil, err
	}
	pid, err := wire.DecodeID(client.PeerID())
	if err != nil {
		return nil, err
	}
	var announce sync.Once
	t, err := swarm.New(swarm.Config{
		InfoHash: ih,
		PeerID:   pid,
		Info:     cfg.Info,
		Open:     d.open,
		Logger:   log,
		OnPiece: func(int) {
			// Re-share from the first verified piece on, as the prototype.
			// In a goroutine: Announce may wait for the client's rate limit.
			announce.Do(func() {
				announcing.Add(1)
				go func() {
					defer announcing.Done()
					client.Announce(ctx, cfg.Hash)
				}()
			})
		},
	})
	if err != nil {
		return nil, err
	}
	defer t.Close()
	defer d.close()
	d.failures = make(chan peering.Failure, 16)
	// The session's Host: files fetched from one peer of ours share one
	// connection, a data channel each.
	link := s.host.Join(peering.LinkConfig{Hash: cfg.Hash, Torrent: t,
		OnFailure: func(f peering.Failure) {
			select {
			case d.failures <- f:
			default: // the loop will see the others through Link.GaveUp
			}
		}})
	defer link.Close()

	s.mu.Lock()
	asked := s.asked[cfg.Hash]
	delete(s.asked, cfg.Hash)
	s.mu.Unlock()
	if err := d.wait(ctx, t, client, link, asked); err != nil {
		if errors.Is(err, errAlreadyThere) {
			d.mu.Lock()
			defer d.mu.Unlock()
			return done(&Result{Path: d.path, Info: d.info, AlreadyThere: true}, start), nil
		}
		if parent.Err() != nil {
			return nil, d.interrupted(parent.Err())
		}
		return nil, err
	}
	if err := d.dl.Finish(); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Someone put a file there while we downloaded; it is left alone.
			return nil, fmt.Errorf("%s appeared while downloading and was left alone; the complete download is kept as %s: %w",
				d.path, d.path+store.PartSuffix, ErrExists)
		}
		return nil, err
	}
	timeline.Mark(ctx, "file in place")
	st := t.Stats()
	res := &Result{
		Path:         d.path,
		Info:         t.Info(),
		Downloaded:   st.Downloaded,
		Uploaded:     st.Uploaded,
		Resumed:      d.resumed,
		ResumedBytes: d.resumedBytes,
	}
	d.noteSenders(st)
	res.Peers = len(d.senders)
	bye, stop := context.WithTimeout(context.Background(), time.Second)
	defer stop()
	client.Finish(bye, cfg.Hash)
	return done(res, start), nil
}

// done stamps res with the time since start.
func done(res *Result, start time.Time) *Result {
	if res != nil {
		res.Elapsed = time.Since(start)
	}
	return res
}

// errAlreadyThere stops a torrent whose target turned out to hold the file.
var errAlreadyThere = errors.New("the file is already there")

// alreadyThere checks the target of info under output: nothing there gives
// (nil, nil); the same content gives a Result; anything else ErrExists.
func alreadyThere(ctx context.Context, output string, info *content.Info) (*Result, error) {
	path, err := targetPath(output, info)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, nil // not there (or unreadable: opening the download says why)
	}
	if fi.Mode().IsRegular() && fi.Size() == info.TotalLength {
		got, err := content.HashFile(ctx, path, nil)
		if err == nil && got.FullHash == info.FullHash {
			return &Result{Path: path, Info: info, AlreadyThere: true}, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("%s: %w with other content; remove it or choose another with -o", path, ErrExists)
}

// download is the state of one Run that the swarm's callbacks share.
type download struct {
	cfg Config
	log *slog.Logger

	mu           sync.Mutex
	dl           *store.Download
	path         string
	info         *content.Info // set with path when the file is already there
	resumed      int
	resumedBytes int64

	// senders are the ids of peers that sent us data, kept from each
	// progress sample because Stats lists only the peers still connected.
	// Only Run's goroutine touches it.
	senders map[string]bool

	// failures carries peering's failed attempts to wait's loop.
	failures chan peering.Failure
}

// noteSenders remembers the peers of st that have sent us data.
func (d *download) noteSenders(st swarm.Stats) {
	for _, p := range st.PerPeer {
		if p.Downloaded > 0 {
			if d.senders == nil {
				d.senders = make(map[string]bool)
			}
			d.senders[p.PeerID] = true
		}
	}
}

// open is the swarm's Open: it picks the target path once the file name is
// known and opens (or resumes) the download there.
func (d *download) open(info *content.Info) (swarm.PieceReader, error) {
	path, err := targetPath(d.cfg.Output, info)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		res, err := alreadyThere(context.Background(), d.cfg.Output, info)
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		d.path, d.info = res.Path, info
		d.mu.Unlock()
		return nil, errAlreadyThere
	}
	dl, err := store.OpenDownload(path, info)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.dl, d.path, d.resumed = dl, path, info.PiecesAmount-dl.Missing()
	d.resumedBytes = haveBytes(info, dl)
	d.mu.Unlock()
	if d.resumed > 0 {
		d.log.Info("resuming", "path", path+store.PartSuffix, "pieces", d.resumed, "of", info.PiecesAmount)
	}
	return verifiedWriter{dl}, nil
}

// verifiedWriter hands the swarm's pieces to the store without hashing them
// again: the swarm verifies every piece against its hash before WritePiece.
type verifiedWriter struct{ *store.Download }

func (w verifiedWriter) WritePiece(piece int, data []byte) error {
	return w.WriteVerifiedPiece(piece, data)
}

// interrupted explains an interruption: what was kept and how to resume.
func (d *download) interrupted(cause error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dl == nil {
		return fmt.Errorf("%w before any data arrived: %w", ErrInterrupted, cause)
	}
	have := haveBytes(d.dl.Info(), d.dl)
	return &interruptError{part: d.path + store.PartSuffix, have: have, total: d.dl.Info().TotalLength, cause: cause}
}

// interruptError is ErrInterrupted with the .part file that was kept.
type interruptError struct {
	part        string
	have, total int64
	cause       error
}

func (e *interruptError) Error() string {
	return fmt.Sprintf("interrupted; %s keeps the %d of %d bytes verified so far, and running the same command again resumes from there",
		e.part, e.have, e.total)
}

func (e *interruptError) Is(target error) bool { return target == ErrInterrupted }
func (e *interruptError) Unwrap() error        { return e.cause }

// PartialDownload returns the .part file an interruption kept and its
// verified and total bytes, if err is one.
func PartialDownload(err error) (part string, have, total int64, ok bool) {
	var ie *interruptError
	if errors.As(err, &ie) {
		return ie.part, ie.have, ie.total, true
	}
	return "", 0, 0, false
}

func (d *download) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dl != nil {
		d.dl.Close()
	}
}

// Giving up on unreachable peers (see unreachable).
const (
	// giveUpGrace is how long wait keeps asking for other peers once every
	// peer found has failed, before it returns ErrUnreachable.
	giveUpGrace = 2 * time.Second
	// maxFound bounds the peer ids wait remembers.
	maxFound = 1024
)

// wait asks for peers and connects to them until the torrent is complete,
// reporting progress. It gives up after cfg.Timeout without progress, or
// soon after every peer found has failed to connect (ErrUnreachable).
// asked says the session asked for the hash's peers already, as it connected.
func (d *download) wait(ctx context.Context, t *swarm.Torrent, client *mediatorclient.Client, link *peering.Link, asked bool) error {
	askEvery := firstAsk
	ask := time.NewTimer(askEvery)
	defer ask.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()

	if !asked {
		client.GetPeers(ctx, d.cfg.Hash)
		timeline.Mark(ctx, "mediator: get_peers sent")
	}
	// Progress is verified data only (the info dictionary, then pieces), so
	// a peer sending bytes that never verify cannot hold --timeout off.
	lastProgress := time.Now()
	lastHave, infoKnown := 0, d.cfg.Info != nil
	everConnected := false
	var u unreachable
	var known []string // the latest peers answer
	connect := func() {
		for _, id := range known {
			if link.Sessions() >= d.cfg.WantPeers {
				break
			}
			link.Connect(id)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.Done():
			d.report(t, link, &u)
			return nil
		case <-t.Stopped():
			if err := t.Err(); err != nil {
				return err
			}
			return swarm.ErrClosed
		case known = <-link.Peers():
			if len(known) > 0 {
				timeline.Mark(ctx, "mediator: peers answered")
			}
			u.found(known)
			connect()
		case f := <-d.failures:
			// Try the next peer at once, and ask for more.
			u.failed(f)
			d.log.Debug("could not connect", "peer", f.Peer, "err", f.Err)
			connect()
			if link.Sessions() < d.cfg.WantPeers {
				client.GetPeers(ctx, d.cfg.Hash)
			}
		case <-ask.C:
			if link.Sessions() < d.cfg.WantPeers {
				client.GetPeers(ctx, d.cfg.Hash)
			}
			askEvery = min(2*askEvery, askInterval)
			ask.Reset(askEvery)
		case <-tick.C:
			st := d.report(t, link, &u)
			if st.Peers > 0 || len(d.senders) > 0 {
				everConnected = true
			}
			if st.PiecesHave != lastHave || (st.PiecesTotal > 0 && !infoKnown) {
				lastHave, infoKnown, lastProgress = st.PiecesHave, true, time.Now()
			}
			if !everConnected && u.hopeless(link, time.Now()) {
				return u.err()
			}
			if time.Since(lastProgress) > d.cfg.Timeout {
				if st.Banned > 0 && st.Peers == 0 {
					return fmt.Errorf("%w: %d peer(s) sent false or unsolicited data and were banned, and no other peer came in %s",
						ErrVerify, st.Banned, d.cfg.Timeout)
				}
				if !everConnected {
					if u.attempts > 0 {
						return u.err()
					}
					return fmt.Errorf("%w (%s) for %s", ErrNoPeers, d.cfg.Timeout, d.cfg.Hash)
				}
				return fmt.Errorf("%w: no verified data for %s", ErrStalled, d.cfg.Timeout)
			}
		}
	}
}

// unreachable tracks the peers found and the attempts to connect them that
// failed, to give up soon once none is left to try. Only wait's goroutine
// uses it.
type unreachable struct {
	peers    map[string]bool // every peer id found
	attempts int             // failed attempts
	lastErr  error           // the last failure, preferring ICE failures
	since    time.Time       // when every peer had been given up on
}

func (u *unreachable) found(ids []string) {
	if u.peers == nil {
		u.peers = make(map[string]bool)
	}
	for _, id := range ids {
		if len(u.peers) < maxFound {
			u.peers[id] = true
		}
	}
}

func (u *unreachable) failed(f peering.Failure) {
	if !f.Initiator {
		return // an offer to us that failed says nothing about the peers we dial
	}
	u.attempts++
	var ie *rtc.ICEError
	if errors.As(f.Err, &ie) || u.lastErr == nil || !errors.As(u.lastErr, &ie) {
		u.lastErr = f.Err
	}
}

// hopeless reports whether peers were found, each has failed to connect
// as often as peering tries, nothing is in progress, and that has lasted
// giveUpGrace (time for a newly announced peer to show up).
func (u *unreachable) hopeless(link *peering.Link, now time.Time) bool {
	all := len(u.peers) > 0 && link.Sessions() == 0
	for id := range u.peers {
		if !all {
			break
		}
		all = link.GaveUp(id)
	}
	if !all {
		u.since = time.Time{}
		return false
	}
	if u.since.IsZero() {
		u.since = now
	}
	return now.Sub(u.since) >= giveUpGrace
}

// err says what was found and why none of it could be connected.
func (u *unreachable) err() error {
	msg := fmt.Sprintf("found %d peer(s) but could not connect to any (%d attempt(s) failed)", len(u.peers), u.attempts)
	var ie *rtc.ICEError
	if errors.As(u.lastErr, &ie) {
		msg += ": " + ie.Error()
		if h := ie.Hint(); h != "" {
			msg += "; " + h
		}
		return &unreachableError{msg: msg, cause: ie}
	}
	if u.lastErr == nil { // the failures were not seen one by one
		return &unreachableError{msg: msg, cause: ErrUnreachable}
	}
	return &unreachableError{msg: msg + ": " + u.lastErr.Error(), cause: u.lastErr}
}

// unreachableError wraps ErrUnreachable and the last failure (an
// *rtc.ICEError when ICE found no path) with a message for the user.
type unreachableError struct {
	msg   string
	cause error
}

func (e *unreachableError) Error() string   { return e.msg }
func (e *unreachableError) Unwrap() []error { return []error{ErrUnreachable, e.cause} }

func (d *download) report(t *swarm.Torrent, link *peering.Link, u *unreachable) swarm.Stats {
	st := t.Stats()
	d.noteSenders(st)
	if d.cfg.Progress == nil {
		return st
	}
	p := Progress{Info: t.Info(), Downloaded: st.Downloaded, Peers: st.Peers, Found: len(u.peers),
		Connecting: max(0, link.Sessions()-st.Peers)}
	if p.Info != nil {
		p.Total = p.Info.TotalLength
		d.mu.Lock()
		dl := d.dl
		d.mu.Unlock()
		if dl != nil {
			p.Have = haveBytes(p.Info, dl)
		}
	}
	d.cfg.Progress(p)
	return st
}

// haveBytes counts the verified bytes of dl.
func haveBytes(info *content.Info, dl *store.Download) int64 {
	missing := dl.Missing()
	if missing == 0 {
		return info.TotalLength
	}
	have := int64(info.PiecesAmount-missing) * info.PiecesLength
	if !dl.Has(info.PiecesAmount-1) || have > info.TotalLength {
		return min(have, info.TotalLength)
	}
	// The short last piece is among those we have.
	return have - info.PiecesLength + int64(info.PieceSize(info.PiecesAmount-1))
}

// targetPath is where the file goes: output itself, or the dictionary's
// sanitized name inside output when output is a directory (or empty).
func targetPath(output string, info *content.Info) (string, error) {
	name := content.SafeName(info.FileName)
	if output == "" {
		return name, nil
	}
	if strings.HasSuffix(output, string(os.PathSeparator)) {
		return filepath.Join(output, name), nil
	}
	if fi, err := os.Stat(output); err == nil && fi.IsDir() {
		return filepath.Join(output, name), nil
	}
	return output, nil
}

// Package swarm exchanges one file with many peers over the BitTorrent peer
// wire: it serves the pieces it has, downloads the ones it lacks (16 KiB
// blocks, pipelined, rarest first, endgame), bans peers that send corrupt
// data, and fetches the info dictionary by hash (p2pcdn_info) when it was not
// given one.
//
// A Torrent owns no transport: the caller hands it each peer's byte stream
// with AddPeer, which runs that peer until it ends.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

// PieceReader gives access to the pieces a store holds. Implementations must
// be safe for concurrent use: every peer reads from its own goroutine.
type PieceReader interface {
	Has(piece int) bool
	// ReadBlock fills p with the bytes of piece starting at begin.
	ReadBlock(piece, begin int, p []byte) error
}

// PieceWriter is a store that can also receive pieces. The swarm has
// already verified data against the piece hash; an error from WritePiece is
// a local failure (disk full, ...) and stops the torrent. WritePiece must not
// keep data after it returns: the buffer is reused.
type PieceWriter interface {
	PieceReader
	WritePiece(piece int, data []byte) error
}

// Errors AddPeer may return.
var (
	ErrClosed = errors.New("torrent closed")
	ErrBanned = errors.New("peer is banned for this file: it sent corrupt data or a false info dictionary")
)

// Config configures a Torrent. Zero tuning fields take safe defaults.
type Config struct {
	InfoHash [20]byte // the file's full hash, hex-decoded
	PeerID   [20]byte // ours
	// Info is the info dictionary; nil to fetch it by hash from peers that
	// offer p2pcdn_info (docs/extensions.md).
	Info *content.Info
	// Open returns the store once the info is known: at New when Info is
	// given, otherwise when it has been fetched and verified. If the store
	// is a PieceWriter and lacks pieces, the torrent downloads them.
	Open   func(info *content.Info) (PieceReader, error)
	Logger *slog.Logger
	// OnPiece is called after each verified, stored piece, from peer
	// goroutines, possibly concurrently; it must not block for long.
	OnPiece func(piece int)

	Pipeline          int           // initial outstanding block requests per peer; default 64
	MaxPipeline       int           // the adaptive depth's ceiling; default 256
	MaxActiveBytes    int           // partly downloaded pieces held in memory; default 32 MiB
	MaxQueuedRequests int           // a peer's requests waiting for upload; default 512, more closes it
	RequestTimeout    time.Duration // no block for this long: requests go to others; default 30 s
	EndgameDelay      time.Duration // age before a block is also requested from a second peer; default 1 s
	HandshakeTimeout  time.Duration // default 30 s
	IdleTimeout       time.Duration // nothing received for this long closes the peer; default 3 min
}

const (
	blockSize = 16 << 10
	// ourInfoExtID is the extended id we want p2pcdn_info messages on.
	ourInfoExtID = 1
	// maxCtrlBacklog bounds small messages queued for a peer that does not
	// read; beyond it the peer is dropped.
	maxCtrlBacklog = 1 << 20
)

func (c *Config) setDefaults() {
	if c.Pipeline <= 0 {
		c.Pipeline = 64
	}
	if c.MaxPipeline < c.Pipeline {
		c.MaxPipeline = max(c.Pipeline, 256)
	}
	if c.MaxActiveBytes <= 0 {
		c.MaxActiveBytes = 32 << 20
	}
	if c.MaxQueuedRequests <= 0 {
		c.MaxQueuedRequests = 512
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.EndgameDelay <= 0 {
		c.EndgameDelay = time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 30 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 3 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Stats is a snapshot of a torrent's transfer state.
type Stats struct {
	Uploaded, Downloaded    int64 // block bytes
	Peers                   int
	PiecesHave, PiecesTotal int // PiecesTotal is 0 while the info is unknown
	Banned                  int // peers banned for corrupt data or a false info dictionary
	PerPeer                 []PeerStats
}

// PeerStats is one connected peer's share.
type PeerStats struct {
	Remote               string
	PeerID               string
	Uploaded, Downloaded int64
}

// Torrent is one file exchanged with many peers, seeding and/or downloading.
type Torrent struct {
	cfg     Config
	log     *slog.Logger
	hashHex string
	ctx     context.Context
	cancel  context.CancelCauseFunc
	wg      sync.WaitGroup // running AddPeer calls
	done    chan struct{}  // closed when every piece is here
	npieces atomic.Int64   // 0 until the info is known; read by peer readers

	up, down atomic.Int64

	mu          sync.Mutex
	closed      bool
	info        *content.Info
	infoBytes   []byte
	store       PieceReader
	writer      PieceWriter // nil when seeding only or complete
	have        []byte      // our bitfield
	haveCount   int
	pieces      []pieceState
	avail       []int // how many connected peers have each piece
	active      []int // pieces with a buffer, being downloaded
	activeBytes int
	freeBufs    [][]byte
	peers       map[*peer]struct{}
	byID        map[[20]byte]*peer
	banned      map[[20]byte]bool
	bannedAddr  map[string]bool
	infoFetcher *peer // the peer we fetch the info bytes from
	infoBusy    bool  // info bytes complete, being verified
	reqSeq      uint64
}

type pieceState struct {
	verifying bool
	buf       []byte // non-nil while active or verifying
	blocks    []blockState
	got       int
	owner     *peer // the peer that started it
	exclusive bool  // a mixed-source copy failed its hash: only owner fetches it
}

type blockState struct {
	got  bool
	from *peer
	reqs []*peer // peers with this block requested
}

// New returns a Torrent. With cfg.Info set it opens the store right away.
func New(cfg Config) (*Torrent, error) {
	cfg.setDefaults()
	if cfg.Open == nil {
		return nil, errors.New("swarm: Config.Open is required")
	}
	t := &Torrent{
		cfg:        cfg,
		log:        cfg.Logger,
		hashHex:    wire.EncodeID(cfg.InfoHash),
		done:       make(chan struct{}),
		peers:      map[*peer]struct{}{},
		byID:       map[[20]byte]*peer{},
		banned:     map[[20]byte]bool{},
		bannedAddr: map[string]bool{},
	}
	t.log = t.log.With("file", t.hashHex)
	t.ctx, t.cancel = context.WithCancelCause(context.Background())
	if cfg.Info != nil {
		if cfg.Info.FullHash != t.hashHex {
			return nil, fmt.Errorf("swarm: info dictionary is for %s, not %s", cfg.Info.FullHash, t.hashHex)
		}
		store, err := cfg.Open(cfg.Info)
		if err != nil {
			return nil, fmt.Errorf("opening the store for %s: %w", t.hashHex, err)
		}
		t.mu.Lock()
		err = t.installLocked(cfg.Info, store)
		t.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Done is closed when every piece is verified and stored.
func (t *Torrent) Done() <-chan struct{} { return t.done }

// Stopped is closed when the torrent stops: Close, or a fatal store error.
func (t *Torrent) Stopped() <-chan struct{} { return t.ctx.Done() }

// Err returns the fatal error that stopped the torrent, or nil.
func (t *Torrent) Err() error {
	if err := context.Cause(t.ctx); err != nil && !errors.Is(err, ErrClosed) {
		return err
	}
	return nil
}

// Info returns the info dictionary, nil until known.
func (t *Torrent) Info() *content.Info {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.info
}

// Stats returns a snapshot of the transfer state.
func (t *Torrent) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Stats{Uploaded: t.up.Load(), Downloaded: t.down.Load(), Peers: len(t.peers), PiecesHave: t.haveCount,
		Banned: len(t.banned)}
	if t.info != nil {
		s.PiecesTotal = t.info.PiecesAmount
	}
	for p := range t.peers {
		s.PerPeer = append(s.PerPeer, PeerStats{Remote: p.remote, PeerID: wire.EncodeID(p.id),
			Uploaded: p.up.Load(), Downloaded: p.down.Load()})
	}
	return s
}

// Close disconnects every peer and waits for their AddPeer calls to return.
func (t *Torrent) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.cancel(ErrClosed)
	t.wg.Wait()
	return nil
}

// fail stops the torrent on a local error. Err hands it to the owner, who
// reports it to the user: logging it here too would print it twice.
func (t *Torrent) fail(err error) {
	t.log.Debug("torrent stopped", "err", err)
	t.cancel(err)
}

// installLocked makes the info and store current: computes what we have,
// checks peers' bitfields, and tells peers.
func (t *Torrent) installLocked(info *content.Info, store PieceReader) error {
	infoBytes, err := info.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding the info dictionary: %w", err)
	}
	n := info.PiecesAmount
	t.info, t.infoBytes, t.store = info, infoBytes, store
	t.have = make([]byte, wire.BitfieldLen(n))
	t.pieces = make([]pieceState, n)
	t.avail = make([]int, n)
	for i := range n {
		if store.Has(i) {
			wire.BitfieldSet(t.have, i)
			t.haveCount++
		}
	}
	if w, ok := store.(PieceWriter); ok && t.haveCount < n {
		t.writer = w
	}
	if t.haveCount == n {
		close(t.done)
	}
	t.npieces.Store(int64(n))
	for p := range t.peers {
		if p.bf != nil {
			if err := fitBitfield(&p.bf, n); err != nil {
				p.drop(err)
				continue
			}
			p.availCounted = true
			t.addAvailLocked(p.bf)
		}
		if p.extended {
			p.sendExtHandshakeLocked()
		}
		p.sendBitfieldLocked()
		p.updateInterestLocked()
		t.fillLocked(p)
	}
	return nil
}

// fitBitfield resizes a bitfield received before the piece count was known
// to exactly n pieces, refusing one that claims pieces past the end.
func fitBitfield(bf *[]byte, n int) error {
	l := wire.BitfieldLen(n)
	if len(*bf) < l {
		*bf = append(*bf, make([]byte, l-len(*bf))...)
	}
	if anySet((*bf)[l:]) {
		return fmt.Errorf("its bitfield claims pieces past the last of %d", n)
	}
	*bf = (*bf)[:l]
	return wire.CheckBitfield(*bf, n)
}

func anySet(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return true
		}
	}
	return false
}

func (t *Torrent) addAvailLocked(bf []byte) {
	for i := range t.avail {
		if wire.BitfieldHas(bf, i) {
			t.avail[i]++
		}
	}
}

func (t *Torrent) completeLocked() bool { return t.info != nil && t.haveCount == t.info.PiecesAmount }

// downloadingLocked reports whether we are fetching pieces.
func (t *Torrent) downloadingLocked() bool { return t.writer != nil && !t.completeLocked() }

// ban forbids p's id and address for this torrent and disconnects it.
func (t *Torrent) banLocked(p *peer, why error) {
	p.banned = true
	t.banned[p.id] = true
	if p.remote != "" {
		t.bannedAddr[p.remote] = true
	}
	t.log.Warn("banning peer", "peer", p.remote, "id", wire.EncodeID(p.id), "why", why)
	p.drop(fmt.Errorf("%w: %w", ErrBanned, why))
}

package swarm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/timeline"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

type blockKey struct{ piece, block int }

// request is an outstanding block request: when, and in which order.
type request struct {
	seq uint64
	at  time.Time
}

// peer is one connection. Fields below "under t.mu" belong to the torrent's
// lock; the rest are owned by the peer's own goroutines.
type peer struct {
	t        *Torrent
	remote   string
	id       [20]byte
	extended bool // remote set the BEP 10 bit
	cancel   context.CancelCauseFunc
	out      *outbox
	up, down atomic.Int64
	tl       *timeline.Timeline // the steps of a download, from AddPeer's context; usually nil

	// under t.mu
	bf           []byte // remote's bitfield; grows while the info is unknown
	peerChoking  bool   // remote chokes us
	amInterested bool
	sentBF       bool
	outstanding  map[blockKey]request
	lastProgress time.Time // last block received, or first request after none outstanding
	lastRecv     time.Time
	snubbed      bool // timed out: one request at a time until it delivers
	depth        int  // current pipeline depth, adapted to the peer's rate
	lastDown     int64
	lastSample   time.Time
	infoExtID    int // remote's id for p2pcdn_info; 0 if it lacks the extension
	infoSize     int
	infoBuf      []byte // info bytes being fetched from this peer
	infoGot      []bool
	infoGotN     int
	infoFailed   bool
	infoStart    time.Time // when we asked it for the info bytes
	blind        bool      // we asked for piece 0 with our handshake (firstpiece.go), not yet adopted
	blindAt      time.Time
	availCounted bool // bf is counted in t.avail
	banned       bool
	hasher       *content.PieceHasher // used by this peer's reader only
}

// drop disconnects p with a reason.
func (p *peer) drop(err error) { p.cancel(err) }

// send queues a small message; a peer that lets them pile up is dropped.
func (p *peer) send(m wire.Message) {
	if !p.out.push(m) {
		p.drop(errors.New("peer does not read what we send"))
	}
}

// AddPeer runs the peer protocol on conn until the peer leaves, ctx ends or
// the torrent closes, then closes conn. initiator means we sent the WebRTC
// offer, so we send the BitTorrent handshake first. It returns nil when the
// peer left cleanly or the torrent closed.
func (t *Torrent) AddPeer(ctx context.Context, conn io.ReadWriteCloser, initiator bool, remote string) error {
	defer conn.Close()
	t.mu.Lock()
	switch {
	case t.closed:
		t.mu.Unlock()
		return ErrClosed
	case remote != "" && t.bannedAddr[remote]:
		t.mu.Unlock()
		return ErrBanned
	}
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(t.ctx, func() { cancel(context.Cause(t.ctx)) })()
	// Closing the stream is the only way to interrupt a blocked Read or Write.
	defer context.AfterFunc(ctx, func() { conn.Close() })()

	r := wire.NewReader(conn, wire.Limits{})
	blind := initiator && isPeerOfOurs(ctx) && t.Info() == nil
	blindAt := time.Now()
	hs, err := t.handshake(ctx, conn, r, initiator, blind, cancel)
	if err != nil {
		return t.peerResult(ctx, fmt.Errorf("handshake with %s: %w", remote, err))
	}
	p := &peer{t: t, remote: remote, id: hs.PeerID, extended: hs.SupportsExtensions(), cancel: cancel,
		out: newOutbox(), peerChoking: true, outstanding: map[blockKey]request{},
		lastRecv: time.Now(), hasher: content.NewPieceHasher(), depth: t.cfg.Pipeline, lastSample: time.Now(),
		tl: timeline.FromContext(ctx), blind: blind, blindAt: blindAt}
	if err := t.register(p); err != nil {
		return err
	}
	defer t.unregister(p)
	t.log.Debug("peer connected", "peer", remote, "id", wire.EncodeID(p.id))

	g, gctx := errgroup.WithContext(ctx)
	defer context.AfterFunc(gctx, func() { conn.Close() })()
	g.Go(func() error { return p.writeLoop(gctx, conn) })
	g.Go(func() error { return p.readLoop(r) })
	g.Go(func() error { return p.tickLoop(gctx) })
	err = g.Wait()
	return t.peerResult(ctx, err)
}

// peerResult turns how a peer ended into AddPeer's result: the reason it was
// dropped (ban, protocol error, fatal store error, the caller's ctx), the
// error that ended its stream, or nil for a clean end or Close.
func (t *Torrent) peerResult(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		if errors.Is(cause, ErrClosed) {
			return nil
		}
		return cause
	}
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// handshake exchanges BitTorrent handshakes; with blind, the initiator's goes out with a request for
// the first piece (firstpiece.go).
func (t *Torrent) handshake(ctx context.Context, conn io.Writer, r *wire.Reader, initiator, blind bool, cancel context.CancelCauseFunc) (wire.Handshake, error) {
	timer := time.AfterFunc(t.cfg.HandshakeTimeout, func() {
		cancel(fmt.Errorf("no handshake within %v", t.cfg.HandshakeTimeout))
	})
	defer timer.Stop()
	ours := wire.AppendHandshake(nil, wire.NewHandshake(t.cfg.InfoHash, t.cfg.PeerID))
	if initiator {
		out := ours
		if blind {
			out = wire.AppendMessage(append([]byte(nil), ours...), firstPiece)
		}
		if _, err := conn.Write(out); err != nil {
			return wire.Handshake{}, causeOr(ctx, err)
		}
	}
	hs, err := r.ReadHandshake()
	if err != nil {
		return hs, causeOr(ctx, err)
	}
	timeline.Mark(ctx, "bt: handshake received")
	if hs.InfoHash != t.cfg.InfoHash {
		return hs, fmt.Errorf("peer offers file %s, not %s", wire.EncodeID(hs.InfoHash), t.hashHex)
	}
	if hs.PeerID == t.cfg.PeerID {
		return hs, errors.New("connected to ourselves")
	}
	if !initiator {
		if _, err := conn.Write(ours); err != nil {
			return hs, causeOr(ctx, err)
		}
	}
	return hs, nil
}

func causeOr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return err
}

// register adds p and queues our opening messages: extended handshake,
// bitfield (the prototype's seeder waits for one), unchoke.
func (t *Torrent) register(p *peer) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.banned[p.id] {
		return ErrBanned
	}
	if _, dup := t.byID[p.id]; dup {
		return fmt.Errorf("peer %s is already connected", wire.EncodeID(p.id))
	}
	t.peers[p] = struct{}{}
	t.byID[p.id] = p
	if p.extended {
		p.sendExtHandshakeLocked()
	}
	p.sendBitfieldLocked()
	p.send(wire.Message{ID: wire.Unchoke}) // we serve everyone; each has its own writer
	return nil
}

// unregister forgets p and hands its requests to other peers.
func (t *Torrent) unregister(p *peer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.peers, p)
	delete(t.byID, p.id)
	t.releaseRequestsLocked(p, false)
	if p.availCounted {
		for i := range t.avail {
			if wire.BitfieldHas(p.bf, i) {
				t.avail[i]--
			}
		}
	}
	for _, i := range slices.Clone(t.active) {
		if ps := &t.pieces[i]; ps.owner == p {
			ps.owner = nil
			if ps.exclusive && !ps.verifying {
				t.stopPieceLocked(i) // nobody else may finish it
			}
		}
	}
	if t.infoFetcher == p {
		t.infoFetcher = nil
		t.startInfoFetchLocked()
	}
	for q := range t.peers {
		t.fillLocked(q)
	}
	t.log.Debug("peer left", "peer", p.remote)
}

func (p *peer) sendExtHandshakeLocked() {
	h := wire.ExtHandshake{M: map[string]int{wire.InfoExtName: ourInfoExtID}}
	if len(p.t.infoBytes) <= wire.MaxInfoSize {
		h.InfoSize = len(p.t.infoBytes) // larger ones (over ~190,000 pieces) are not offered by hash
	}
	if len(p.t.infoBytes) <= wire.MaxInlineInfo {
		h.Info = p.t.infoBytes // a downloader by hash has it without asking: a round trip saved
	}
	p.send(wire.Message{ID: wire.Extended, ExtID: wire.ExtHandshakeID, Payload: h.Marshal()})
}

func (p *peer) sendBitfieldLocked() {
	if p.sentBF || p.t.info == nil {
		return // sent once the info is known
	}
	p.sentBF = true
	p.send(wire.Message{ID: wire.Bitfield, Payload: p.t.have})
}

// updateInterestLocked sends interested when p has a piece we lack.
func (p *peer) updateInterestLocked() {
	t := p.t
	if p.amInterested || p.bf == nil || !t.downloadingLocked() {
		return
	}
	for i := range t.info.PiecesAmount {
		if wire.BitfieldHas(p.bf, i) && !wire.BitfieldHas(t.have, i) {
			p.amInterested = true
			p.send(wire.Message{ID: wire.Interested})
			return
		}
	}
}

// writeLoop sends queued messages and uploads blocks, reading each from the
// store when its turn comes so memory stays bounded.
func (p *peer) writeLoop(ctx context.Context, conn io.Writer) error {
	bw := bufio.NewWriterSize(conn, 64<<10)
	keepAlive := time.NewTicker(time.Minute)
	defer keepAlive.Stop()
	var spare, block []byte
	wrote := false
	for {
		ctrl, req, ok := p.out.take(spare)
		if len(ctrl) > 0 {
			if _, err := bw.Write(ctrl); err != nil {
				return fmt.Errorf("sending to %s: %w", p.remote, err)
			}
			wrote = true
		}
		spare = ctrl
		if ok {
			n := int(req.Length)
			if cap(block) < n {
				block = make([]byte, n)
			}
			if err := p.t.readBlock(int(req.Index), int(req.Begin), block[:n]); err != nil {
				p.t.fail(err)
				return err
			}
			hdr := wire.AppendPieceHeader(spare[:0], req.Index, req.Begin, n)
			if _, err := bw.Write(hdr); err != nil {
				return fmt.Errorf("sending to %s: %w", p.remote, err)
			}
			if _, err := bw.Write(block[:n]); err != nil {
				return fmt.Errorf("sending to %s: %w", p.remote, err)
			}
			p.up.Add(int64(n))
			p.t.up.Add(int64(n))
			wrote = true
			continue
		}
		if len(ctrl) > 0 {
			continue // more may have arrived meanwhile
		}
		if bw.Buffered() > 0 {
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("sending to %s: %w", p.remote, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.out.wake:
		case <-keepAlive.C:
			if !wrote {
				p.out.push(wire.Message{ID: wire.KeepAlive})
			}
			wrote = false
		}
	}
}

func (t *Torrent) readBlock(piece, begin int, b []byte) error {
	t.mu.Lock()
	store := t.store
	t.mu.Unlock()
	if err := store.ReadBlock(piece, begin, b); err != nil {
		return fmt.Errorf("reading piece %d of %s from the store: %w", piece, t.hashHex, err)
	}
	return nil
}

// tickLoop enforces the request and idle timeouts, and tops up the
// pipeline, which matters in endgame where blocks become eligible for
// duplicate requests only with age.
func (p *peer) tickLoop(ctx context.Context) error {
	every := min(p.t.cfg.RequestTimeout/4, p.t.cfg.IdleTimeout/4, p.t.cfg.EndgameDelay/2, 250*time.Millisecond)
	tick := time.NewTicker(max(every, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			if err := p.t.checkTimeouts(p, now); err != nil {
				return err
			}
		}
	}
}

func (t *Torrent) checkTimeouts(p *peer, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(p.lastRecv) > t.cfg.IdleTimeout {
		return fmt.Errorf("peer %s sent nothing for %v", p.remote, t.cfg.IdleTimeout)
	}
	if len(p.outstanding) > 0 && now.Sub(p.lastProgress) > t.cfg.RequestTimeout {
		t.log.Debug("peer stalled; requesting its blocks elsewhere", "peer", p.remote, "blocks", len(p.outstanding))
		p.snubbed = true
		t.releaseRequestsLocked(p, true)
		for q := range t.peers {
			t.fillLocked(q)
		}
	}
	p.adaptDepthLocked(now)
	if t.infoFetcher == p && !t.infoBusy && now.Sub(p.infoStart) > t.cfg.RequestTimeout {
		t.log.Debug("peer did not send the info dictionary in time", "peer", p.remote)
		p.infoFailed, p.infoBuf, p.infoGot = true, nil, nil
		t.infoFetcher = nil
		t.startInfoFetchLocked()
	}
	t.fillLocked(p)
	return nil
}

// readLoop decodes and handles messages until the stream ends.
func (p *peer) readLoop(r *wire.Reader) error {
	known := int64(0)
	for {
		if n := p.t.npieces.Load(); n != known {
			known = n
			r.SetPieceCount(int(n))
		}
		m, err := r.ReadMessage()
		if err != nil {
			if err == io.EOF {
				return io.EOF
			}
			return fmt.Errorf("reading from %s: %w", p.remote, err)
		}
		if err := p.t.handle(p, m); err != nil {
			return fmt.Errorf("peer %s: %w", p.remote, err)
		}
	}
}

// depthWindow is how much of a peer's measured rate we keep requested: the
// pipeline must cover a round trip, which we cannot see, so we aim for a
// generous half second. A depth that limits the rate thus grows each tick
// until the link, MaxPipeline or the peer's sending speed is the limit.
const depthWindow = 500 * time.Millisecond

// adaptDepthLocked sets p's pipeline depth from its recent download rate.
func (p *peer) adaptDepthLocked(now time.Time) {
	dt := now.Sub(p.lastSample)
	if dt < 100*time.Millisecond {
		return
	}
	down := p.down.Load()
	rate := float64(down-p.lastDown) / dt.Seconds()
	p.lastDown, p.lastSample = down, now
	want := int(rate * depthWindow.Seconds() / blockSize)
	p.depth = min(max(want, p.t.cfg.Pipeline), p.t.cfg.MaxPipeline)
}

package swarm

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

// maxUnknownPieces bounds the bitfield we keep for a peer while the info is
// unknown (have messages may grow it).
const maxUnknownPieces = wire.DefaultMaxBitfield * 8

// endgameDepth bounds a peer's requests while it only duplicates others'.
const endgameDepth = 4

// handle applies one message from p. An error closes the connection.
func (t *Torrent) handle(p *peer, m wire.Message) error {
	if m.ID == wire.Piece {
		return t.handleBlock(p, m)
	}
	if m.ID == wire.Extended && m.ExtID == ourInfoExtID {
		return t.handleInfoMsg(p, m.Payload)
	}
	if m.ID == wire.Extended && m.ExtID == wire.ExtHandshakeID {
		return t.handleExtHandshake(p, m.Payload)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p.lastRecv = time.Now()
	switch m.ID {
	case wire.Choke:
		// BEP 3: a choke discards our pending requests.
		p.peerChoking = true
		t.releaseRequestsLocked(p, false)
		for q := range t.peers {
			t.fillLocked(q)
		}
	case wire.Unchoke:
		p.peerChoking = false
		t.fillLocked(p)
	case wire.Have:
		return t.handleHaveLocked(p, int(m.Index))
	case wire.Bitfield:
		return t.handleBitfieldLocked(p, m.Payload)
	case wire.Request:
		return t.handleRequestLocked(p, m)
	case wire.Cancel:
		p.out.cancelUpload(m)
	case wire.Extended:
		// Another extension we did not advertise: ignore.
	}
	// Keep-alive, interested, not interested and unknown ids need nothing.
	return nil
}

func (t *Torrent) handleHaveLocked(p *peer, i int) error {
	limit := maxUnknownPieces
	if t.info != nil {
		limit = t.info.PiecesAmount
	}
	if i >= limit {
		return fmt.Errorf("have for piece %d, but the file has %d", i, limit)
	}
	need := wire.BitfieldLen(i + 1)
	if t.info != nil {
		need = wire.BitfieldLen(limit)
	}
	if len(p.bf) < need || p.bf == nil {
		p.bf = append(p.bf, make([]byte, need-len(p.bf))...)
	}
	if wire.BitfieldHas(p.bf, i) {
		return nil
	}
	wire.BitfieldSet(p.bf, i)
	if t.info == nil {
		return nil
	}
	p.availCounted = true
	t.avail[i]++
	if !wire.BitfieldHas(t.have, i) && t.downloadingLocked() {
		if !p.amInterested {
			p.amInterested = true
			p.send(wire.Message{ID: wire.Interested})
		}
		t.fillLocked(p)
	}
	return nil
}

func (t *Torrent) handleBitfieldLocked(p *peer, bf []byte) error {
	if p.bf != nil {
		return errors.New("sent a bitfield after its first bitfield or have")
	}
	if t.info == nil {
		p.bf = bytes.Clone(bf)
		return nil
	}
	if err := wire.CheckBitfield(bf, t.info.PiecesAmount); err != nil {
		return err
	}
	p.bf = bytes.Clone(bf)
	p.availCounted = true
	t.addAvailLocked(p.bf)
	p.updateInterestLocked()
	t.fillLocked(p)
	return nil
}

// handleRequestLocked queues an upload. Requests for pieces we lack are
// ignored (BEP 3 style); requests outside a piece, or longer than a piece
// message may carry, close the connection. A request running past the end
// of a piece is answered with the bytes that exist: the prototype asks for
// 200,000 bytes even for the short last piece.
func (t *Torrent) handleRequestLocked(p *peer, m wire.Message) error {
	if t.info == nil || int(m.Index) >= t.info.PiecesAmount || !wire.BitfieldHas(t.have, int(m.Index)) {
		return nil
	}
	size := t.info.PieceSize(int(m.Index))
	if int64(m.Begin) >= int64(size) || m.Length == 0 || m.Length > wire.DefaultMaxBlock {
		return fmt.Errorf("bad request: piece %d offset %d length %d (piece is %d bytes)", m.Index, m.Begin, m.Length, size)
	}
	m.Length = uint32(min(int(m.Length), size-int(m.Begin)))
	if !p.out.queueUpload(m, t.cfg.MaxQueuedRequests) {
		return fmt.Errorf("more than %d requests waiting", t.cfg.MaxQueuedRequests)
	}
	return nil
}

// handleExtHandshake applies an extended handshake. One that carries the info bytes themselves
// (info_bytes, docs/extensions.md) gives us the dictionary at once when we lack it: it is checked and
// installed as fetched bytes are, without asking.
func (t *Torrent) handleExtHandshake(p *peer, payload []byte) error {
	h, err := wire.ParseExtHandshake(payload)
	if err != nil {
		return err
	}
	t.mu.Lock()
	p.lastRecv = time.Now()
	p.tl.Mark("bt: extended handshake received")
	p.infoExtID = h.M[wire.InfoExtName]
	if p.infoExtID != 0 && h.InfoSize > 0 {
		p.infoSize = h.InfoSize
	}
	if len(h.Info) > 0 && t.info == nil && !t.infoBusy && !p.infoFailed {
		t.infoBusy = true
		t.mu.Unlock()
		return t.acceptInfo(p, h.Info)
	}
	if t.infoFetcher == nil {
		t.startInfoFetchLocked()
	}
	t.mu.Unlock()
	return nil
}

// releaseRequestsLocked forgets p's outstanding requests so other peers can
// take them, telling p when it is still connected.
func (t *Torrent) releaseRequestsLocked(p *peer, sendCancel bool) {
	for k := range p.outstanding {
		ps := &t.pieces[k.piece]
		if ps.blocks != nil {
			b := &ps.blocks[k.block]
			b.reqs = removePeer(b.reqs, p)
		}
		if sendCancel {
			begin, n := t.blockRange(k)
			p.send(wire.Message{ID: wire.Cancel, Index: uint32(k.piece), Begin: uint32(begin), Length: uint32(n)})
		}
	}
	clear(p.outstanding)
}

func removePeer(ps []*peer, p *peer) []*peer {
	for i, q := range ps {
		if q == p {
			return append(ps[:i], ps[i+1:]...)
		}
	}
	return ps
}

func (t *Torrent) blockRange(k blockKey) (begin, n int) {
	begin = k.block * blockSize
	return begin, min(blockSize, t.info.PieceSize(k.piece)-begin)
}

func (t *Torrent) numBlocks(piece int) int {
	return (t.info.PieceSize(piece) + blockSize - 1) / blockSize
}

// fillLocked tops up p's pipeline of requests.
func (t *Torrent) fillLocked(p *peer) {
	if p.blind {
		t.adoptFirstLocked(p)
	}
	if !t.downloadingLocked() || p.peerChoking || p.bf == nil || !p.amInterested || p.banned {
		return
	}
	depth := p.depth
	if p.snubbed {
		depth = 1
	}
	for len(p.outstanding) < depth {
		k, ok := t.pickLocked(p)
		if !ok {
			return
		}
		if len(p.outstanding) == 0 {
			p.lastProgress = time.Now()
		}
		ps := &t.pieces[k.piece]
		ps.blocks[k.block].reqs = append(ps.blocks[k.block].reqs, p)
		t.reqSeq++
		p.outstanding[k] = request{seq: t.reqSeq, at: time.Now()}
		begin, n := t.blockRange(k)
		p.send(wire.Message{ID: wire.Request, Index: uint32(k.piece), Begin: uint32(begin), Length: uint32(n)})
		p.tl.Mark("bt: first block requested")
	}
}

// pickLocked chooses p's next block: first in pieces p started, then a new
// piece (rarest first), then unrequested blocks of others' pieces, and at
// the end (every missing piece in progress) a second request for a block
// another peer has outstanding.
func (t *Torrent) pickLocked(p *peer) (blockKey, bool) {
	if k, ok := t.pickActiveLocked(p, true); ok {
		return k, true
	}
	i, ok, capped := t.pickNewLocked(p)
	if ok {
		t.startPieceLocked(i, p)
		return blockKey{i, 0}, true
	}
	if k, ok := t.pickActiveLocked(p, false); ok {
		return k, true
	}
	if capped || len(p.outstanding) >= endgameDepth {
		// Not the end (memory is full of pieces in progress), or p has
		// enough duplicates in flight: more would mostly be wasted.
		return blockKey{}, false
	}
	return t.pickEndgameLocked(p)
}

func (t *Torrent) pickActiveLocked(p *peer, own bool) (blockKey, bool) {
	for _, i := range t.active {
		ps := &t.pieces[i]
		if ps.verifying || (own != (ps.owner == p)) || (ps.exclusive && ps.owner != p) || !wire.BitfieldHas(p.bf, i) {
			continue
		}
		if ps.exclusive && ps.owner == nil {
			continue
		}
		for b := range ps.blocks {
			if !ps.blocks[b].got && len(ps.blocks[b].reqs) == 0 {
				return blockKey{i, b}, true
			}
		}
	}
	return blockKey{}, false
}

// pickNewLocked returns the rarest piece p has that nobody is fetching;
// capped means there is one but MaxActiveBytes allows no new piece now.
func (t *Torrent) pickNewLocked(p *peer) (piece int, ok, capped bool) {
	best, bestAvail := -1, 0
	maxPieces := max(1, t.cfg.MaxActiveBytes/int(t.info.PiecesLength))
	n := t.info.PiecesAmount
	start := int(time.Now().UnixNano() % int64(n)) // spread ties between downloaders
	for j := range n {
		i := (start + j) % n
		if wire.BitfieldHas(t.have, i) || t.pieces[i].buf != nil || !wire.BitfieldHas(p.bf, i) {
			continue
		}
		if best < 0 || t.avail[i] < bestAvail {
			best, bestAvail = i, t.avail[i]
		}
	}
	if best >= 0 && len(t.active) >= maxPieces {
		return 0, false, true
	}
	return best, best >= 0, false
}

// startPieceLocked makes piece i active with p as its owner.
func (t *Torrent) startPieceLocked(i int, p *peer) {
	ps := &t.pieces[i]
	if n := len(t.freeBufs); n > 0 {
		ps.buf, t.freeBufs = t.freeBufs[n-1], t.freeBufs[:n-1]
	} else {
		ps.buf = make([]byte, t.info.PiecesLength)
	}
	ps.buf = ps.buf[:t.info.PieceSize(i)]
	ps.blocks = make([]blockState, t.numBlocks(i))
	ps.got = 0
	ps.owner = p
	t.active = append(t.active, i)
}

// stopPieceLocked drops piece i's partial state.
func (t *Torrent) stopPieceLocked(i int) {
	ps := &t.pieces[i]
	for b := range ps.blocks {
		for _, q := range ps.blocks[b].reqs {
			delete(q.outstanding, blockKey{i, b})
		}
	}
	if ps.buf != nil && len(t.freeBufs) < 4 {
		t.freeBufs = append(t.freeBufs, ps.buf[:cap(ps.buf)])
	}
	ps.buf, ps.blocks, ps.got, ps.owner, ps.verifying = nil, nil, 0, nil, false
	for j, a := range t.active {
		if a == i {
			t.active = append(t.active[:j], t.active[j+1:]...)
			break
		}
	}
}

// pickEndgameLocked duplicates a block another peer has had outstanding
// for at least EndgameDelay (sooner, the copy is mostly waste: the other
// peer has likely sent it already), choosing the one it was asked for most
// recently, which sits at the back of its queue.
func (t *Torrent) pickEndgameLocked(p *peer) (blockKey, bool) {
	var best blockKey
	var bestSeq uint64
	oldest := time.Now().Add(-t.cfg.EndgameDelay)
	for _, i := range t.active {
		ps := &t.pieces[i]
		if ps.verifying || ps.exclusive || !wire.BitfieldHas(p.bf, i) {
			continue
		}
		for b := range ps.blocks {
			bs := &ps.blocks[b]
			if bs.got || len(bs.reqs) != 1 || bs.reqs[0] == p {
				continue
			}
			k := blockKey{i, b}
			if r := bs.reqs[0].outstanding[k]; r.seq > bestSeq && !r.at.After(oldest) {
				best, bestSeq = k, r.seq
			}
		}
	}
	return best, bestSeq > 0
}

// handleBlock stores a received block and, when its piece is complete,
// verifies and writes it outside the lock.
func (t *Torrent) handleBlock(p *peer, m wire.Message) error {
	t.mu.Lock()
	p.lastRecv = time.Now()
	if p.banned {
		t.mu.Unlock()
		return ErrBanned
	}
	if t.info == nil && p.blind && m.Index == 0 && m.Begin == 0 {
		// The answer to our blind request came before the dictionary (too large to ride in the
		// extended handshake): we cannot check it yet, so it is dropped.
		p.blind = false
		t.mu.Unlock()
		return nil
	}
	if t.info == nil || int(m.Index) >= t.info.PiecesAmount {
		// Nobody asked for it: we request nothing before the info is known.
		// Banned, so it cannot come back and keep a download looking busy.
		why := fmt.Errorf("sent piece %d, which does not exist", m.Index)
		if t.info == nil {
			why = fmt.Errorf("sent piece %d before the info dictionary was known (unsolicited)", m.Index)
		}
		t.banLocked(p, why)
		t.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrBanned, why)
	}
	p.tl.Mark("bt: first block received")
	p.down.Add(int64(len(m.Payload)))
	t.down.Add(int64(len(m.Payload)))
	i := int(m.Index)
	ps := &t.pieces[i]
	if ps.buf == nil || ps.verifying {
		t.mu.Unlock()
		return nil // late duplicate (endgame, timeout); harmless
	}
	begin, end := int(m.Begin), int(m.Begin)+len(m.Payload)
	if begin%blockSize != 0 || end > len(ps.buf) || (end%blockSize != 0 && end != len(ps.buf)) {
		t.mu.Unlock()
		return nil // not on our block grid: we never asked for it
	}
	for b := begin / blockSize; b*blockSize < end; b++ {
		bs := &ps.blocks[b]
		k := blockKey{i, b}
		delete(p.outstanding, k)
		if bs.got {
			continue
		}
		off := b * blockSize
		copy(ps.buf[off:], m.Payload[off-begin:min(end, off+blockSize)-begin])
		bs.got, bs.from = true, p
		ps.got++
		for _, q := range bs.reqs {
			if q != p {
				delete(q.outstanding, k)
				n := min(blockSize, len(ps.buf)-off)
				q.send(wire.Message{ID: wire.Cancel, Index: uint32(i), Begin: uint32(off), Length: uint32(n)})
				t.fillLocked(q)
			}
		}
		bs.reqs = nil
	}
	p.lastProgress = time.Now()
	p.snubbed = false
	if ps.got < len(ps.blocks) {
		t.fillLocked(p)
		t.mu.Unlock()
		return nil
	}
	ps.verifying = true
	buf, want, writer := ps.buf, t.info.PieceHashes[i], t.writer
	t.fillLocked(p)
	t.mu.Unlock()

	ok := p.hasher.Hash(buf) == want
	var werr error
	if ok {
		werr = writer.WritePiece(i, buf)
	}

	t.mu.Lock()
	if werr != nil {
		t.mu.Unlock()
		err := fmt.Errorf("saving piece %d of %s: %w", i, t.hashHex, werr)
		t.fail(err)
		return err
	}
	if !ok {
		t.pieceFailedLocked(i)
		t.mu.Unlock()
		return nil
	}
	p.tl.Mark("bt: first piece verified")
	t.pieceDoneLocked(i)
	if t.completeLocked() {
		p.tl.Mark("bt: complete")
	}
	t.mu.Unlock()
	if t.cfg.OnPiece != nil {
		t.cfg.OnPiece(i)
	}
	return nil
}

// pieceFailedLocked handles a piece whose hash did not match: a single
// sender is banned; with several we cannot tell who lied, so the piece is
// fetched again from one peer only, which settles it next time.
func (t *Torrent) pieceFailedLocked(i int) {
	ps := &t.pieces[i]
	senders := map[*peer]bool{}
	for _, b := range ps.blocks {
		senders[b.from] = true
	}
	t.stopPieceLocked(i)
	if len(senders) == 1 {
		for q := range senders {
			t.banLocked(q, fmt.Errorf("piece %d failed its hash check", i))
		}
	} else {
		ps.exclusive = true
		t.log.Info("piece failed its hash check; fetching it again from one peer", "piece", i, "senders", len(senders))
	}
	for q := range t.peers {
		t.fillLocked(q)
	}
}

func (t *Torrent) pieceDoneLocked(i int) {
	t.stopPieceLocked(i)
	t.pieces[i].exclusive = false
	wire.BitfieldSet(t.have, i)
	t.haveCount++
	complete := t.completeLocked()
	for q := range t.peers {
		q.send(wire.Message{ID: wire.Have, Index: uint32(i)})
		if complete && q.amInterested {
			q.amInterested = false
			q.send(wire.Message{ID: wire.NotInterested})
		}
	}
	if complete {
		t.writer = nil
		close(t.done)
		t.log.Info("download complete", "pieces", t.haveCount)
		return
	}
	for q := range t.peers {
		t.fillLocked(q)
	}
}

// startInfoFetchLocked picks a peer offering the info bytes and asks it for
// all of them; one fetch at a time bounds memory.
func (t *Torrent) startInfoFetchLocked() {
	if t.info != nil || t.infoBusy || t.infoFetcher != nil {
		return
	}
	for q := range t.peers {
		if q.infoSize > 0 && !q.infoFailed {
			t.infoFetcher = q
			q.infoStart = time.Now()
			n := (q.infoSize + wire.InfoBlockSize - 1) / wire.InfoBlockSize
			q.infoBuf, q.infoGot, q.infoGotN = make([]byte, q.infoSize), make([]bool, n), 0
			for j := range n {
				q.send(wire.Message{ID: wire.Extended, ExtID: uint8(q.infoExtID),
					Payload: wire.AppendInfoMsg(nil, wire.InfoMsg{Type: wire.InfoRequest, Piece: j})})
			}
			q.tl.Mark("bt: info dictionary requested")
			t.log.Debug("fetching the info dictionary", "peer", q.remote, "size", q.infoSize)
			return
		}
	}
}

// handleInfoMsg serves and receives p2pcdn_info messages.
func (t *Torrent) handleInfoMsg(p *peer, payload []byte) error {
	m, err := wire.ParseInfoMsg(payload)
	if err != nil {
		return err
	}
	t.mu.Lock()
	p.lastRecv = time.Now()
	switch m.Type {
	case wire.InfoRequest:
		defer t.mu.Unlock()
		if p.infoExtID == 0 {
			return errors.New("asked for the info dictionary without advertising p2pcdn_info")
		}
		reply := wire.InfoMsg{Type: wire.InfoReject, Piece: m.Piece}
		if start := m.Piece * wire.InfoBlockSize; t.info != nil && start < len(t.infoBytes) && len(t.infoBytes) <= wire.MaxInfoSize {
			reply = wire.InfoMsg{Type: wire.InfoData, Piece: m.Piece, TotalSize: len(t.infoBytes),
				Data: t.infoBytes[start:min(start+wire.InfoBlockSize, len(t.infoBytes))]}
		}
		p.send(wire.Message{ID: wire.Extended, ExtID: uint8(p.infoExtID), Payload: wire.AppendInfoMsg(nil, reply)})
		return nil
	case wire.InfoReject:
		defer t.mu.Unlock()
		if t.infoFetcher == p {
			p.infoFailed, p.infoBuf, p.infoGot = true, nil, nil
			t.infoFetcher = nil
			t.startInfoFetchLocked()
		}
		return nil
	}
	// InfoData
	if t.infoFetcher != p || p.infoBuf == nil {
		t.mu.Unlock()
		return nil // unasked or late: ignore
	}
	if m.TotalSize != p.infoSize {
		t.mu.Unlock()
		return fmt.Errorf("info dictionary is %d bytes, but it advertised %d", m.TotalSize, p.infoSize)
	}
	if !p.infoGot[m.Piece] {
		copy(p.infoBuf[m.Piece*wire.InfoBlockSize:], m.Data)
		p.infoGot[m.Piece] = true
		p.infoGotN++
	}
	if p.infoGotN < len(p.infoGot) {
		t.mu.Unlock()
		return nil
	}
	data := p.infoBuf
	p.infoBuf, p.infoGot = nil, nil
	t.infoBusy = true
	t.mu.Unlock()
	return t.acceptInfo(p, data)
}

// acceptInfo verifies fetched info bytes, opens the store and installs them.
func (t *Torrent) acceptInfo(p *peer, data []byte) error {
	info, err := content.ParseInfo(data)
	if err == nil && info.FullHash != t.hashHex {
		err = fmt.Errorf("info dictionary is for %s, not %s", info.FullHash, t.hashHex)
	}
	if err != nil {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.infoBusy, t.infoFetcher, p.infoFailed = false, nil, true
		t.banLocked(p, fmt.Errorf("false info dictionary: %w", err))
		t.startInfoFetchLocked()
		return fmt.Errorf("%w: %w", ErrBanned, err)
	}
	store, err := t.cfg.Open(info)
	if err != nil {
		err = fmt.Errorf("opening the store for %s: %w", t.hashHex, err)
		t.fail(err)
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.infoBusy, t.infoFetcher = false, nil
	p.tl.Mark("bt: info dictionary verified")
	t.log.Info("got the info dictionary", "peer", p.remote, "name", info.FileName, "pieces", info.PiecesAmount)
	if err := t.installLocked(info, store); err != nil {
		t.fail(err)
		return err
	}
	return nil
}

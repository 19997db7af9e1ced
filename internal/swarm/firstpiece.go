package swarm

import (
	"context"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

// The first piece with the handshake (docs/extensions.md): a downloader by hash waits a round trip for
// the seeder's extended handshake (which carries a small dictionary) before it can ask for blocks. Toward
// a peer of ours it asks for piece 0 blind, in the flight of its handshake: piece 0 always exists, and a
// seeder answers a request running past a piece's end with the bytes there are. Our seeders send their
// extended handshake, bitfield and unchoke before any block, so the dictionary is known when the piece
// arrives; the blind request then becomes piece 0's outstanding blocks.

type oursKey struct{}

// PeerOfOurs marks ctx, for AddPeer, as a connection with a peer of ours: one whose WebRTC signals were
// marked (docs/extensions.md). Toward it a downloader that lacks the dictionary asks for the first piece
// with its handshake.
func PeerOfOurs(ctx context.Context) context.Context { return context.WithValue(ctx, oursKey{}, true) }

func isPeerOfOurs(ctx context.Context) bool { v, _ := ctx.Value(oursKey{}).(bool); return v }

// firstPiece is the blind request: all of piece 0 at the prototype's piece length.
var firstPiece = wire.Message{ID: wire.Request, Index: 0, Begin: 0, Length: content.PieceLength}

// adoptFirstLocked makes p's blind request for piece 0 the piece's outstanding blocks once the
// dictionary and p's bitfield are known. If piece 0 is had, in progress elsewhere or not p's, nothing
// is adopted: the answer, if any, is then a harmless duplicate or fills blocks of the active piece.
func (t *Torrent) adoptFirstLocked(p *peer) {
	if t.info == nil || p.bf == nil {
		return
	}
	p.blind = false
	if !t.downloadingLocked() || t.info.PiecesLength != content.PieceLength || wire.BitfieldHas(t.have, 0) ||
		!wire.BitfieldHas(p.bf, 0) || t.pieces[0].buf != nil || t.pieces[0].exclusive {
		return
	}
	t.startPieceLocked(0, p)
	if len(p.outstanding) == 0 {
		p.lastProgress = time.Now()
	}
	ps := &t.pieces[0]
	for b := range ps.blocks {
		ps.blocks[b].reqs = append(ps.blocks[b].reqs, p)
		t.reqSeq++
		p.outstanding[blockKey{0, b}] = request{seq: t.reqSeq, at: p.blindAt}
	}
}

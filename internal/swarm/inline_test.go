package swarm

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

// TestInfoInExtHandshake: a seeder's extended handshake carries a small dictionary itself, so a
// downloader by hash asks for blocks at once, never for the dictionary (a round trip saved).
func TestInfoInExtHandshake(t *testing.T) {
	data := testData(2*content.PieceLength+5, 11)
	info := testInfo(t, data)
	infoBytes, _ := info.MarshalJSON()

	// What our seeder says: its handshake carries the bytes.
	seed := newSeeder(t, info, fullStore(info, data), 1)
	a, b := tcpPair(t)
	go seed.AddPeer(context.Background(), b, false, "raw")
	p := newRawPeer(t, a)
	p.handshake(info, 9)
	h, err := wire.ParseExtHandshake(p.next(wire.Extended).Payload)
	if err != nil || !bytes.Equal(h.Info, infoBytes) || h.InfoSize != len(infoBytes) {
		t.Fatalf("seeder's extended handshake: %+v (%v), want the %d info bytes in it", h, err, len(infoBytes))
	}

	// What our downloader does with it.
	down, store := newDownloader(t, info, true, nil)
	c, d := tcpPair(t)
	go down.AddPeer(context.Background(), c, true, "seeder")
	s := newRawPeer(t, d)
	if _, err := s.r.ReadHandshake(); err != nil {
		t.Fatal(err)
	}
	s.conn.Write(wire.AppendHandshake(nil, wire.NewHandshake(hashOf(t, info), peerID(9))))
	hs := wire.ExtHandshake{M: map[string]int{wire.InfoExtName: 3}, InfoSize: len(infoBytes), Info: infoBytes}
	s.send(wire.Message{ID: wire.Extended, Payload: hs.Marshal()})
	full := make([]byte, wire.BitfieldLen(info.PiecesAmount))
	for i := range info.PiecesAmount {
		wire.BitfieldSet(full, i)
	}
	s.send(wire.Message{ID: wire.Bitfield, Payload: full})
	s.send(wire.Message{ID: wire.Unchoke})
	asked := make(chan string, 1)
	go func() {
		for {
			m, err := s.r.ReadMessage()
			if err != nil {
				return // the test is over
			}
			if m.ID == wire.Extended && m.ExtID == 3 {
				asked <- "the downloader asked for a dictionary it was given"
				return
			}
			if m.ID == wire.Request {
				off := int(m.Index)*content.PieceLength + int(m.Begin)
				s.send(wire.Message{ID: wire.Piece, Index: m.Index, Begin: m.Begin, Payload: data[off : off+int(m.Length)]})
			}
		}
	}()
	select {
	case msg := <-asked:
		t.Fatal(msg)
	case <-down.Done():
	case <-time.After(testTimeout):
		t.Fatal("download did not finish")
	}
	if !bytes.Equal(store().bytes(), data) {
		t.Fatal("downloaded bytes differ")
	}
}

// TestLyingInlineInfoBanned: a dictionary in the extended handshake is checked as a fetched one is; a
// false one bans its sender, and the download goes on with an honest seeder.
func TestLyingInlineInfoBanned(t *testing.T) {
	data := testData(3*content.PieceLength, 12)
	info := testInfo(t, data)
	down, store := newDownloader(t, info, true, nil)
	a, b := tcpPair(t)
	errc := make(chan error, 1)
	go func() { errc <- down.AddPeer(context.Background(), a, true, "liar") }()
	lie := info.Clone()
	lie.PieceHashes[1] = lie.PieceHashes[0]
	lieBytes, _ := lie.MarshalJSON()
	p := newRawPeer(t, b)
	if _, err := p.r.ReadHandshake(); err != nil {
		t.Fatal(err)
	}
	p.conn.Write(wire.AppendHandshake(nil, wire.NewHandshake(hashOf(t, info), peerID(9))))
	hs := wire.ExtHandshake{M: map[string]int{wire.InfoExtName: 3}, InfoSize: len(lieBytes), Info: lieBytes}
	p.send(wire.Message{ID: wire.Extended, Payload: hs.Marshal()})
	if err := <-errc; !errors.Is(err, ErrBanned) {
		t.Fatalf("liar's AddPeer: %v, want ErrBanned", err)
	}
	if down.Info() != nil {
		t.Fatal("accepted a false info dictionary")
	}
	seed := newSeeder(t, info, fullStore(info, data), 1)
	connect(t, context.Background(), down, seed, nil)
	waitDone(t, down)
	if !bytes.Equal(store().bytes(), data) {
		t.Fatal("downloaded bytes differ")
	}
}

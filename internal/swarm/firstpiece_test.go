package swarm

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

// TestFirstPieceWithHandshake: toward a peer of ours, a downloader by hash asks for piece 0 with its
// handshake; the answer, coming after the dictionary in the extended handshake, is taken as piece 0,
// which is never asked for again.
func TestFirstPieceWithHandshake(t *testing.T) {
	for _, inline := range []bool{true, false} {
		t.Run(fmt.Sprintf("inline=%v", inline), func(t *testing.T) { testFirstPiece(t, inline) })
	}
}

func testFirstPiece(t *testing.T, inline bool) {
	data := testData(2*content.PieceLength+5, 13)
	info := testInfo(t, data)
	infoBytes, _ := info.MarshalJSON()
	down, store := newDownloader(t, info, true, nil)
	c, d := tcpPair(t)
	go down.AddPeer(PeerOfOurs(context.Background()), c, true, "seeder")
	s := newRawPeer(t, d)
	if _, err := s.r.ReadHandshake(); err != nil {
		t.Fatal(err)
	}
	if m, err := s.r.ReadMessage(); err != nil || m.ID != wire.Request || m.Index != 0 || m.Begin != 0 || m.Length != content.PieceLength {
		t.Fatalf("after its handshake the downloader sent %+v (%v), want a request for all of piece 0", m, err)
	}
	s.conn.Write(wire.AppendHandshake(nil, wire.NewHandshake(hashOf(t, info), peerID(9))))
	hs := wire.ExtHandshake{M: map[string]int{wire.InfoExtName: 3}, InfoSize: len(infoBytes)}
	if inline {
		hs.Info = infoBytes
	}
	s.send(wire.Message{ID: wire.Extended, Payload: hs.Marshal()})
	full := make([]byte, wire.BitfieldLen(info.PiecesAmount))
	for i := range info.PiecesAmount {
		wire.BitfieldSet(full, i)
	}
	s.send(wire.Message{ID: wire.Bitfield, Payload: full})
	s.send(wire.Message{ID: wire.Unchoke})
	// The blind answer, as our seeders send it: one message of the whole piece.
	s.send(wire.Message{ID: wire.Piece, Index: 0, Begin: 0, Payload: data[:content.PieceLength]})

	asked := make(chan string, 1)
	go func() {
		for {
			m, err := s.r.ReadMessage()
			if err != nil {
				return // the test is over
			}
			switch {
			case m.ID == wire.Request && m.Index == 0 && inline:
				asked <- fmt.Sprintf("piece 0 asked again (offset %d) after it came with the handshake", m.Begin)
				return
			case m.ID == wire.Request:
				off := int(m.Index)*content.PieceLength + int(m.Begin)
				s.send(wire.Message{ID: wire.Piece, Index: m.Index, Begin: m.Begin, Payload: data[off : off+int(m.Length)]})
			case m.ID == wire.Extended && m.ExtID == 3:
				req, err := wire.ParseInfoMsg(m.Payload)
				if err != nil {
					asked <- err.Error()
					return
				}
				start := req.Piece * wire.InfoBlockSize
				s.send(wire.Message{ID: wire.Extended, ExtID: 1, Payload: wire.AppendInfoMsg(nil, wire.InfoMsg{
					Type: wire.InfoData, Piece: req.Piece, TotalSize: len(infoBytes),
					Data: infoBytes[start:min(start+wire.InfoBlockSize, len(infoBytes))]})})
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
	if st := down.Stats(); st.Banned != 0 {
		t.Errorf("%d peers banned: an early answer must be dropped, not punished", st.Banned)
	}
}

// TestNoFirstPieceTowardOthers: toward a peer not known to be ours (the prototype's seeders unchoke only
// after our bitfield), the downloader's handshake goes alone.
func TestNoFirstPieceTowardOthers(t *testing.T) {
	data := testData(content.PieceLength, 14)
	info := testInfo(t, data)
	down, _ := newDownloader(t, info, true, nil)
	c, d := tcpPair(t)
	go down.AddPeer(context.Background(), c, true, "proto")
	s := newRawPeer(t, d)
	if _, err := s.r.ReadHandshake(); err != nil {
		t.Fatal(err)
	}
	s.conn.Write(wire.AppendHandshake(nil, wire.NewHandshake(hashOf(t, info), peerID(9))))
	s.send(wire.Message{ID: wire.Extended, Payload: []byte("d1:mdee")})
	m, err := s.r.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if m.ID == wire.Request {
		t.Fatalf("the downloader asked %+v of a peer not known to be ours", m)
	}
}

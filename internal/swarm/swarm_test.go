package swarm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

func TestSeederToDownloader(t *testing.T) {
	sizes := map[string]int{"1 byte": 1, "one piece": content.PieceLength, "short last piece": 5*content.PieceLength + 1234}
	for name, size := range sizes {
		for _, byHash := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/byHash=%v", name, byHash), func(t *testing.T) {
				t.Parallel()
				data := testData(size, uint64(size))
				info := testInfo(t, data)
				seed := newSeeder(t, info, fullStore(info, data), 1)
				down, store := newDownloader(t, info, byHash, nil)
				if byHash && down.Info() != nil {
					t.Fatal("info known before any peer")
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				downErr, _ := connect(t, ctx, down, seed, newChunker)
				waitDone(t, down)
				if got := store().bytes(); !bytes.Equal(got, data) {
					t.Fatal("downloaded bytes differ")
				}
				if got := down.Info(); got == nil || got.FullHash != info.FullHash {
					t.Fatalf("Info() = %+v", got)
				}
				st := down.Stats()
				if st.PiecesHave != info.PiecesAmount || st.PiecesTotal != info.PiecesAmount || st.Downloaded < int64(size) {
					t.Fatalf("stats %+v", st)
				}
				if up := seed.Stats().Uploaded; up < int64(size) {
					t.Fatalf("seeder uploaded %d of %d", up, size)
				}
				cancel()
				if err := <-downErr; err != nil && !errors.Is(err, context.Canceled) {
					t.Fatalf("AddPeer: %v", err)
				}
			})
		}
	}
}

// rawPeer speaks the wire by hand, as the prototype's peers do.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	r    *wire.Reader
}

func newRawPeer(t testing.TB, conn net.Conn) *rawPeer {
	conn.SetDeadline(time.Now().Add(testTimeout))
	return &rawPeer{t: t, conn: conn, r: wire.NewReader(conn, wire.Limits{})}
}

func (p *rawPeer) send(m wire.Message) {
	if _, err := p.conn.Write(wire.AppendMessage(nil, m)); err != nil {
		p.t.Errorf("raw peer write: %v", err)
	}
}

func (p *rawPeer) handshake(info *content.Info, id byte) wire.Handshake {
	if _, err := p.conn.Write(wire.AppendHandshake(nil, wire.NewHandshake(hashOf(p.t, info), peerID(id)))); err != nil {
		p.t.Fatal(err)
	}
	hs, err := p.r.ReadHandshake()
	if err != nil {
		p.t.Fatal(err)
	}
	return hs
}

// next reads messages until one with id arrives.
func (p *rawPeer) next(id wire.ID) wire.Message {
	for {
		m, err := p.r.ReadMessage()
		if err != nil {
			p.t.Fatalf("raw peer waiting for %v: %v", id, err)
		}
		if m.ID == id {
			m.Payload = bytes.Clone(m.Payload)
			return m
		}
	}
}

// The prototype's downloader: bitfield first, one whole-piece request at a
// time in piece order (200,000 bytes even for the short last piece), have
// after each piece.
func TestPrototypeDownloaderAgainstOurSeeder(t *testing.T) {
	data := testData(3*content.PieceLength+777, 3)
	info := testInfo(t, data)
	seed := newSeeder(t, info, fullStore(info, data), 1)
	a, b := tcpPair(t)
	errc := make(chan error, 1)
	go func() { errc <- seed.AddPeer(context.Background(), b, false, "proto") }()
	p := newRawPeer(t, a)
	p.handshake(info, 9)
	p.send(wire.Message{ID: wire.Extended, Payload: []byte("d1:mdee")})
	p.send(wire.Message{ID: wire.Bitfield, Payload: make([]byte, wire.BitfieldLen(info.PiecesAmount))})
	bf := p.next(wire.Bitfield)
	for i := range info.PiecesAmount {
		if !wire.BitfieldHas(bf.Payload, i) {
			t.Fatalf("seeder bitfield %x lacks piece %d", bf.Payload, i)
		}
	}
	p.next(wire.Unchoke)
	p.send(wire.Message{ID: wire.Unchoke})
	p.send(wire.Message{ID: wire.Interested})
	var got []byte
	for i := range info.PiecesAmount {
		p.send(wire.Message{ID: wire.Request, Index: uint32(i), Length: content.PieceLength})
		m := p.next(wire.Piece)
		if int(m.Index) != i || m.Begin != 0 || len(m.Payload) != info.PieceSize(i) {
			t.Fatalf("piece %d: got index %d begin %d, %d bytes", i, m.Index, m.Begin, len(m.Payload))
		}
		got = append(got, m.Payload...)
		p.send(wire.Message{ID: wire.Have, Index: uint32(i)})
	}
	if !bytes.Equal(got, data) {
		t.Fatal("pieces differ from the file")
	}
	// A request outside a piece is a protocol violation: the seeder hangs up.
	p.send(wire.Message{ID: wire.Request, Index: uint32(info.PiecesAmount - 1), Begin: 777, Length: 10})
	if err := <-errc; err == nil || !bytes.Contains([]byte(err.Error()), []byte("bad request")) {
		t.Fatalf("AddPeer after a bad request: %v", err)
	}
}

// The prototype's seeder: answers our handshake, unchokes only after our
// bitfield, answers each request with exactly the block asked.
func TestOurDownloaderAgainstPrototypeSeeder(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testPrototypeSeeder(t, false) })
	// Keep-alives, and a choke after the first request that discards what
	// was asked, as BEP 3 allows; the downloader asks again after unchoke.
	t.Run("choke", func(t *testing.T) { testPrototypeSeeder(t, true) })
}

func testPrototypeSeeder(t *testing.T, choky bool) {
	data := testData(2*content.PieceLength+5, 4)
	info := testInfo(t, data)
	// No request timeout to fall back on: only handling the choke can
	// recover the dropped request.
	down, store := newDownloader(t, info, false, func(c *Config) { c.RequestTimeout = time.Hour })
	a, b := tcpPair(t)
	go down.AddPeer(context.Background(), a, true, "proto")
	p := newRawPeer(t, b)
	if _, err := p.r.ReadHandshake(); err != nil {
		t.Fatal(err)
	}
	p.conn.Write(wire.AppendHandshake(nil, wire.NewHandshake(hashOf(t, info), peerID(9))))
	p.send(wire.Message{ID: wire.Extended, Payload: []byte("d1:mdee")})
	full := make([]byte, wire.BitfieldLen(info.PiecesAmount))
	for i := range info.PiecesAmount {
		wire.BitfieldSet(full, i)
	}
	early := make(chan string, 1)
	go func() {
		sawBitfield := false
		for {
			m, err := p.r.ReadMessage()
			if err != nil {
				return // the test is over
			}
			switch m.ID {
			case wire.Bitfield:
				sawBitfield = true
				p.send(wire.Message{ID: wire.Bitfield, Payload: full})
				p.send(wire.Message{ID: wire.Unchoke})
				p.send(wire.Message{ID: wire.Interested})
			case wire.Request:
				if !sawBitfield {
					early <- "request before the downloader's bitfield"
					return
				}
				if choky {
					// Drop this request, as a choke does; the
					// downloader must ask again after the unchoke.
					choky = false
					p.send(wire.Message{ID: wire.KeepAlive})
					p.send(wire.Message{ID: wire.Choke})
					p.send(wire.Message{ID: wire.KeepAlive})
					p.send(wire.Message{ID: wire.Unchoke})
					continue
				}
				off := int(m.Index)*content.PieceLength + int(m.Begin)
				// Header and payload in separate writes, as the prototype does.
				p.conn.Write(wire.AppendPieceHeader(nil, m.Index, m.Begin, int(m.Length)))
				p.conn.Write(data[off : off+int(m.Length)])
			}
		}
	}()
	select {
	case msg := <-early:
		t.Fatal(msg)
	case <-down.Done():
	case <-time.After(testTimeout):
		t.Fatal("download did not finish")
	}
	if !bytes.Equal(store().bytes(), data) {
		t.Fatal("downloaded bytes differ")
	}
	b.Close()
}

func TestSeederKilledMidway(t *testing.T) {
	data := testData(20*content.PieceLength+3, 5)
	info := testInfo(t, data)
	a := newSeeder(t, info, fullStore(info, data), 1)
	b := newSeeder(t, info, fullStore(info, data), 2)
	down, store := newDownloader(t, info, false, nil)
	gate := make(chan struct{})
	connect(t, context.Background(), down, a, func(c net.Conn) io.ReadWriteCloser { return &gated{Conn: c, gate: gate} })
	// The stream from b dies once the downloader has read 1 MB from it, in
	// the middle of its requests. connect wraps the downloader's end first.
	var bConn *killAfter
	connect(t, context.Background(), down, b, func(c net.Conn) io.ReadWriteCloser {
		if bConn == nil {
			bConn = &killAfter{Conn: &gated{Conn: c, gate: gate}, left: 1 << 20}
			return bConn
		}
		return c // b's side
	})
	close(gate)
	waitDone(t, down)
	if !bytes.Equal(store().bytes(), data) {
		t.Fatal("downloaded bytes differ")
	}
	if !bConn.killed() {
		t.Fatal("the second seeder was never cut off")
	}
}

// killAfter closes its connection once left bytes have been read from it.
type killAfter struct {
	Conn io.ReadWriteCloser
	mu   sync.Mutex
	left int
}

func (k *killAfter) Read(p []byte) (int, error) {
	n, err := k.Conn.Read(p)
	k.mu.Lock()
	k.left -= n
	dead := k.left <= 0
	k.mu.Unlock()
	if dead {
		k.Conn.Close()
		return 0, errors.New("test: connection cut")
	}
	return n, err
}

func (k *killAfter) Write(p []byte) (int, error) { return k.Conn.Write(p) }
func (k *killAfter) Close() error                { return k.Conn.Close() }

func (k *killAfter) killed() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.left <= 0
}

func TestCorruptSeederIsBanned(t *testing.T) {
	data := testData(12*content.PieceLength+99, 6)
	info := testInfo(t, data)
	bad := fullStore(info, data)
	bad.corrupt = true
	liar := newSeeder(t, info, bad, 1)
	honest := newSeeder(t, info, fullStore(info, data), 2)
	down, store := newDownloader(t, info, false, nil)
	ctx := context.Background()
	liarErr, _ := connect(t, ctx, down, liar, newChunker)
	connect(t, ctx, down, honest, newChunker)
	waitDone(t, down)
	if !bytes.Equal(store().bytes(), data) {
		t.Fatal("downloaded bytes differ")
	}
	if err := <-liarErr; !errors.Is(err, ErrBanned) {
		t.Fatalf("liar's AddPeer returned %v, want ErrBanned", err)
	}
	// It may not come back, by id.
	downErr, _ := connect(t, ctx, down, liar, nil)
	if err := <-downErr; !errors.Is(err, ErrBanned) {
		t.Fatalf("banned peer reconnecting: %v", err)
	}
}

// A peer that offers a false info dictionary under the right hash is banned
// and the dictionary comes from an honest peer.
func TestLyingInfoRejected(t *testing.T) {
	data := testData(3*content.PieceLength, 7)
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
	hs := wire.ExtHandshake{M: map[string]int{wire.InfoExtName: 3}, InfoSize: len(lieBytes)}
	p.send(wire.Message{ID: wire.Extended, Payload: hs.Marshal()})
	for {
		m, err := p.r.ReadMessage()
		if err != nil {
			break // banned: the downloader hung up
		}
		if m.ID != wire.Extended || m.ExtID != 3 {
			continue
		}
		req, err := wire.ParseInfoMsg(m.Payload)
		if err != nil {
			t.Fatal(err)
		}
		start := req.Piece * wire.InfoBlockSize
		p.send(wire.Message{ID: wire.Extended, ExtID: 1, Payload: wire.AppendInfoMsg(nil, wire.InfoMsg{
			Type: wire.InfoData, Piece: req.Piece, TotalSize: len(lieBytes),
			Data: lieBytes[start:min(start+wire.InfoBlockSize, len(lieBytes))]})})
	}
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

func TestFourSeedersShareTheLoad(t *testing.T) {
	data := testData(40*content.PieceLength, 8)
	info := testInfo(t, data)
	down, store := newDownloader(t, info, false, nil)
	// Hold the downloader's reads until all four are connected, so the
	// first does not finish alone on this fast loopback.
	gate := make(chan struct{})
	var seeds []*Torrent
	for i := range 4 {
		s := newSeeder(t, info, fullStore(info, data), byte(i+1))
		seeds = append(seeds, s)
		connect(t, context.Background(), down, s, func(c net.Conn) io.ReadWriteCloser { return &gated{Conn: c, gate: gate} })
	}
	close(gate)
	waitDone(t, down)
	if !bytes.Equal(store().bytes(), data) {
		t.Fatal("downloaded bytes differ")
	}
	total := int64(0)
	for i, s := range seeds {
		up := s.Stats().Uploaded
		total += up
		t.Logf("seeder %d sent %d bytes (%.0f%%)", i, up, 100*float64(up)/float64(len(data)))
		if up < int64(len(data))/16 {
			t.Errorf("seeder %d sent only %d of %d bytes", i, up, len(data))
		}
	}
	if total > int64(len(data))*5/4 {
		t.Errorf("seeders sent %d bytes for a %d-byte file: endgame wastes too much", total, len(data))
	}
}

// A seeder that takes requests and never answers must not stall the
// download: its blocks time out and go to another peer.
func TestStalledSeeder(t *testing.T) {
	data := testData(4*content.PieceLength, 9)
	info := testInfo(t, data)
	down, store := newDownloader(t, info, false, func(c *Config) { c.RequestTimeout = 200 * time.Millisecond })
	a, b := tcpPair(t)
	go down.AddPeer(context.Background(), a, true, "staller")
	p := newRawPeer(t, b)
	p.r.ReadHandshake()
	p.conn.Write(wire.AppendHandshake(nil, wire.NewHandshake(hashOf(t, info), peerID(9))))
	full := make([]byte, wire.BitfieldLen(info.PiecesAmount))
	for i := range info.PiecesAmount {
		wire.BitfieldSet(full, i)
	}
	p.send(wire.Message{ID: wire.Bitfield, Payload: full})
	p.send(wire.Message{ID: wire.Unchoke})
	p.next(wire.Request)
	go io.Copy(io.Discard, p.conn) // swallow requests, answer nothing
	seed := newSeeder(t, info, fullStore(info, data), 1)
	connect(t, context.Background(), down, seed, nil)
	waitDone(t, down)
	if !bytes.Equal(store().bytes(), data) {
		t.Fatal("downloaded bytes differ")
	}
}

type gated struct {
	net.Conn
	gate chan struct{}
}

func (g *gated) Read(p []byte) (int, error) {
	<-g.gate
	return g.Conn.Read(p)
}

// A peer that offers the info dictionary and never sends it must not stall
// a download by hash.
func TestSilentInfoPeer(t *testing.T) {
	data := testData(content.PieceLength+1, 10)
	info := testInfo(t, data)
	down, store := newDownloader(t, info, true, func(c *Config) { c.RequestTimeout = 200 * time.Millisecond })
	a, b := tcpPair(t)
	go down.AddPeer(context.Background(), a, true, "silent")
	p := newRawPeer(t, b)
	p.r.ReadHandshake()
	p.conn.Write(wire.AppendHandshake(nil, wire.NewHandshake(hashOf(t, info), peerID(9))))
	hs := wire.ExtHandshake{M: map[string]int{wire.InfoExtName: 3}, InfoSize: 500}
	p.send(wire.Message{ID: wire.Extended, Payload: hs.Marshal()})
	go io.Copy(io.Discard, p.conn)
	seed := newSeeder(t, info, fullStore(info, data), 1)
	connect(t, context.Background(), down, seed, nil)
	waitDone(t, down)
	if !bytes.Equal(store().bytes(), data) {
		t.Fatal("downloaded bytes differ")
	}
}

// A peer that sends pieces before the info dictionary is known (nobody asked
// for them) is banned, not just dropped, and its bytes count for nothing:
// before, it could reconnect at once and keep a download looking busy.
func TestUnsolicitedPiecesBeforeInfoBanned(t *testing.T) {
	data := testData(content.PieceLength+1, 13)
	info := testInfo(t, data)
	down, _ := newDownloader(t, info, true, nil)
	attack := func() error {
		a, b := tcpPair(t)
		errc := make(chan error, 1)
		go func() { errc <- down.AddPeer(context.Background(), a, true, "liar:1") }()
		p := newRawPeer(t, b)
		p.r.ReadHandshake()
		p.conn.Write(wire.AppendHandshake(nil, wire.NewHandshake(hashOf(t, info), peerID(66))))
		// Unchecked: once banned, the connection may be gone already.
		p.conn.Write(wire.AppendMessage(nil, wire.Message{ID: wire.Piece, Index: 0, Payload: bytes.Repeat([]byte{1}, 16<<10)}))
		go io.Copy(io.Discard, p.conn)
		select {
		case err := <-errc:
			return err
		case <-time.After(testTimeout):
			t.Fatal("AddPeer did not return")
		}
		return nil
	}
	if err := attack(); !errors.Is(err, ErrBanned) {
		t.Fatalf("unsolicited piece: AddPeer = %v; want ErrBanned", err)
	}
	st := down.Stats()
	if st.Banned != 1 || st.Downloaded != 0 {
		t.Fatalf("after the attack: %d banned, %d bytes counted as downloaded; want 1 and 0", st.Banned, st.Downloaded)
	}
	// It comes back: refused.
	if err := attack(); !errors.Is(err, ErrBanned) {
		t.Fatalf("banned peer back: AddPeer = %v; want ErrBanned", err)
	}
	// An honest seeder still serves the file.
	connect(t, context.Background(), down, newSeeder(t, info, fullStore(info, data), 1), nil)
	waitDone(t, down)
}

// Bad input from a peer ends its AddPeer with an error, never a hang.
func TestBadPeerInput(t *testing.T) {
	data := testData(2*content.PieceLength, 11)
	info := testInfo(t, data)
	hs := wire.AppendHandshake(nil, wire.NewHandshake(hashOf(t, info), peerID(9)))
	otherHash := wire.AppendHandshake(nil, wire.NewHandshake(peerID(77), peerID(9)))
	msg := func(m wire.Message) []byte { return wire.AppendMessage(nil, m) }
	cases := map[string][]byte{
		"not bittorrent":     []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + string(make([]byte, 60))),
		"other file":         otherHash,
		"huge message":       append(bytes.Clone(hs), 0x7f, 0xff, 0xff, 0xff, 7),
		"bitfield too long":  append(bytes.Clone(hs), msg(wire.Message{ID: wire.Bitfield, Payload: []byte{0xc0, 0}})...),
		"spare bits set":     append(bytes.Clone(hs), msg(wire.Message{ID: wire.Bitfield, Payload: []byte{0xe0}})...),
		"have out of range":  append(bytes.Clone(hs), msg(wire.Message{ID: wire.Have, Index: 2})...),
		"bad ext handshake":  append(bytes.Clone(hs), msg(wire.Message{ID: wire.Extended, Payload: []byte("d1:mi5ee")})...),
		"bad info message":   append(bytes.Clone(hs), msg(wire.Message{ID: wire.Extended, ExtID: ourInfoExtID, Payload: []byte("xx")})...),
		"unasked info ask":   append(bytes.Clone(hs), msg(wire.Message{ID: wire.Extended, ExtID: ourInfoExtID, Payload: []byte("d8:msg_typei0e5:piecei0ee")})...),
		"piece out of range": append(bytes.Clone(hs), msg(wire.Message{ID: wire.Piece, Index: 5, Payload: []byte{1}})...),
		"request too long":   append(bytes.Clone(hs), msg(wire.Message{ID: wire.Request, Index: 0, Length: 1 << 20})...),
		"truncated":          append(bytes.Clone(hs), 0, 0, 0, 9, 6, 0),
	}
	seed := newSeeder(t, info, fullStore(info, data), 1)
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			a, b := tcpPair(t)
			errc := make(chan error, 1)
			go func() { errc <- seed.AddPeer(context.Background(), b, false, name) }()
			a.Write(in)
			if name == "truncated" {
				a.(*net.TCPConn).CloseWrite()
			}
			go io.Copy(io.Discard, a)
			select {
			case err := <-errc:
				if err == nil {
					t.Fatal("AddPeer returned nil")
				}
				t.Log(err)
			case <-time.After(testTimeout):
				t.Fatal("AddPeer did not return")
			}
		})
	}
}

// A leecher that asks for everything and never reads must not stall the
// seeder's other peers: each peer has its own writer and bounded queue.
func TestSlowLeecherDoesNotStallOthers(t *testing.T) {
	data := testData(30*content.PieceLength, 12)
	info := testInfo(t, data)
	seed := newSeeder(t, info, fullStore(info, data), 1)
	a, b := tcpPair(t)
	a.(*net.TCPConn).SetReadBuffer(8 << 10)
	b.(*net.TCPConn).SetWriteBuffer(8 << 10)
	go seed.AddPeer(context.Background(), b, false, "sloth")
	p := newRawPeer(t, a)
	p.handshake(info, 9)
	p.send(wire.Message{ID: wire.Bitfield, Payload: make([]byte, wire.BitfieldLen(info.PiecesAmount))})
	for i := range info.PiecesAmount {
		p.send(wire.Message{ID: wire.Request, Index: uint32(i), Length: content.PieceLength})
	}
	// p never reads again: the seeder's writes to it block once the
	// socket buffers fill.
	down, store := newDownloader(t, info, false, nil)
	connect(t, context.Background(), down, seed, nil)
	waitDone(t, down)
	if !bytes.Equal(store().bytes(), data) {
		t.Fatal("downloaded bytes differ")
	}
	for _, ps := range seed.Stats().PerPeer {
		t.Logf("%s took %d bytes", ps.Remote, ps.Uploaded)
		if ps.Remote == "sloth" && ps.Uploaded >= int64(len(data))/2 {
			t.Fatalf("the leecher took %d bytes without reading: its writer was not blocked", ps.Uploaded)
		}
	}
}

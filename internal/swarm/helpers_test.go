package swarm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

// testTimeout is generous: the test machine is small and shared.
const testTimeout = 90 * time.Second

// memStore is an in-memory PieceWriter that verifies what it is given.
type memStore struct {
	info    *content.Info
	mu      sync.Mutex
	data    []byte
	have    []bool
	corrupt bool // serve flipped bytes (a lying seeder)
	trust   bool // skip the hash check in WritePiece (benchmarks: the swarm verifies)
}

func fullStore(info *content.Info, data []byte) *memStore {
	s := &memStore{info: info, data: bytes.Clone(data), have: make([]bool, info.PiecesAmount)}
	for i := range s.have {
		s.have[i] = true
	}
	return s
}

func emptyStore(info *content.Info) *memStore {
	return &memStore{info: info, data: make([]byte, info.TotalLength), have: make([]bool, info.PiecesAmount)}
}

func (s *memStore) Has(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.have[i]
}

func (s *memStore) ReadBlock(piece, begin int, p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.have[piece] {
		return fmt.Errorf("piece %d missing", piece)
	}
	off := int(int64(piece)*s.info.PiecesLength) + begin
	if begin+len(p) > s.info.PieceSize(piece) {
		return fmt.Errorf("read past piece %d", piece)
	}
	copy(p, s.data[off:])
	if s.corrupt {
		for i := range p {
			p[i] ^= 0x55
		}
	}
	return nil
}

func (s *memStore) WritePiece(piece int, data []byte) error {
	if !s.trust && content.PieceHash(data) != s.info.PieceHashes[piece] {
		return errors.New("store: piece hash mismatch")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	copy(s.data[int64(piece)*s.info.PiecesLength:], data)
	s.have[piece] = true
	return nil
}

func (s *memStore) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.data)
}

func testData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

func testInfo(t testing.TB, data []byte) *content.Info {
	t.Helper()
	info, err := content.HashReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), content.PieceLength, nil)
	if err != nil {
		t.Fatal(err)
	}
	info.FileName = "test.bin"
	return info
}

func peerID(n byte) [20]byte {
	var id [20]byte
	id[0], id[19] = n, n
	return id
}

func hashOf(t testing.TB, info *content.Info) [20]byte {
	h, err := wire.DecodeID(info.FullHash)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// newSeeder returns a torrent seeding store.
func newSeeder(t testing.TB, info *content.Info, store PieceReader, id byte) *Torrent {
	t.Helper()
	tor, err := New(Config{InfoHash: hashOf(t, info), PeerID: peerID(id), Info: info,
		Open: func(*content.Info) (PieceReader, error) { return store, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tor.Close() })
	return tor
}

// newDownloader returns a torrent downloading into a fresh memStore; with
// byHash it is not given the info dictionary.
func newDownloader(t testing.TB, info *content.Info, byHash bool, tune func(*Config)) (*Torrent, func() *memStore) {
	t.Helper()
	var mu sync.Mutex
	var store *memStore
	cfg := Config{InfoHash: hashOf(t, info), PeerID: peerID(200),
		Open: func(got *content.Info) (PieceReader, error) {
			mu.Lock()
			defer mu.Unlock()
			store = emptyStore(got)
			return store, nil
		}}
	if !byHash {
		cfg.Info = info
	}
	if tune != nil {
		tune(&cfg)
	}
	tor, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tor.Close() })
	return tor, func() *memStore {
		mu.Lock()
		defer mu.Unlock()
		return store
	}
}

// connect runs AddPeer on both ends of a fresh stream; the downloader side
// initiates. It returns channels with each side's AddPeer result.
func connect(t testing.TB, ctx context.Context, down, up *Torrent, wrap func(net.Conn) io.ReadWriteCloser) (downErr, upErr chan error) {
	t.Helper()
	a, b := tcpPair(t)
	var ra, rb io.ReadWriteCloser = a, b
	if wrap != nil {
		ra, rb = wrap(a), wrap(b)
	}
	downErr, upErr = make(chan error, 1), make(chan error, 1)
	go func() { downErr <- down.AddPeer(ctx, ra, true, a.RemoteAddr().String()) }()
	go func() { upErr <- up.AddPeer(ctx, rb, false, b.RemoteAddr().String()) }()
	return downErr, upErr
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(acc)
			return
		}
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, ok := <-acc
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// chunker splits every write at random points and reads into random short
// buffers, so message boundaries of the transport mean nothing.
type chunker struct {
	net.Conn
	mu  sync.Mutex
	rng *rand.Rand
}

func newChunker(c net.Conn) io.ReadWriteCloser {
	return &chunker{Conn: c, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))}
}

func (c *chunker) intn(n int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rng.IntN(n)
}

func (c *chunker) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n := min(len(p)-done, 1+c.intn(40000))
		w, err := c.Conn.Write(p[done : done+n])
		done += w
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (c *chunker) Read(p []byte) (int, error) {
	return c.Conn.Read(p[:min(len(p), 1+c.intn(3000))])
}

func waitDone(t testing.TB, tor *Torrent) {
	t.Helper()
	select {
	case <-tor.Done():
	case <-tor.Stopped():
		t.Fatalf("torrent stopped: %v", tor.Err())
	case <-time.After(testTimeout):
		t.Fatalf("download did not finish: %+v", tor.Stats())
	}
}

package federation

import (
	"crypto/sha1"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
)

// krpcClient is a bare UDP socket speaking KRPC to one DHT node, for tests
// that play a hostile or foreign node.
type krpcClient struct {
	t    testing.TB
	conn net.PacketConn
	to   net.Addr
	id   string
	seq  int
}

func newKRPCClient(t testing.TB, to net.Addr) *krpcClient {
	t.Helper()
	return newKRPCClientAt(t, "127.0.0.1", to)
}

// newKRPCClientAt binds the client to ip (a loopback address).
func newKRPCClientAt(t testing.TB, ip string, to net.Addr) *krpcClient {
	t.Helper()
	conn, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &krpcClient{t: t, conn: conn, to: to, id: strings.Repeat("k", 20)}
}

// send sends query q with args a and returns its transaction id.
func (c *krpcClient) send(q string, a map[string]any) string {
	c.t.Helper()
	c.seq++
	tid := fmt.Sprintf("c%03d", c.seq%1000)
	a["id"] = c.id
	b, err := bencode.Marshal(map[string]any{"t": tid, "y": "q", "q": q, "a": a})
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.WriteTo(b, c.to); err != nil {
		c.t.Fatal(err)
	}
	return tid
}

// query sends q and waits for the reply with its transaction id, resending
// a few times (the node may drop replies beyond its send rate).
func (c *krpcClient) query(q string, a map[string]any) krpc.Msg {
	c.t.Helper()
	buf := make([]byte, 65536)
	for try := 0; try < 20; try++ {
		tid := c.send(q, a)
		c.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, _, err := c.conn.ReadFrom(buf)
			if err != nil {
				break
			}
			var m krpc.Msg
			if bencode.Unmarshal(buf[:n], &m) == nil && m.T == tid {
				return m
			}
		}
	}
	c.t.Fatalf("no reply to %s from %v", q, c.to)
	return krpc.Msg{}
}

// liveHeap returns the bytes of live heap objects after a collection.
func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestBEP44PutsAreNotKept floods our DHT node with BEP 44 immutable puts
// of ~1 KB (issue 11, item 2: the library's default store kept them
// forever). The node must neither keep nor return them, so the live heap
// stays flat.
func TestBEP44PutsAreNotKept(t *testing.T) {
	const puts = 5000
	m := newMediator(t, "A", func(c *Config) {
		// Let every reply through: the test paces itself on them.
		c.SendRate, c.SendBurst = 1e6, 1e6
	})
	m.start(t)
	c := newKRPCClient(t, m.fed.DHTAddr())
	value := func(i int) string { return fmt.Sprintf("%06d", i) + strings.Repeat("v", 900) }
	target := func(v string) string {
		sum := sha1.Sum(bencode.MustMarshal(v))
		return string(sum[:])
	}
	r := c.query("get", map[string]any{"target": target(value(0))})
	if r.R == nil || r.R.Token == nil {
		t.Fatalf("get answered %+v, want a write token", r)
	}
	token := *r.R.Token

	before := liveHeap()
	for i := range puts {
		c.send("put", map[string]any{"token": token, "seq": 0, "v": value(i)})
		// Pace on a ping every 100 puts: the node handles packets in
		// order, so the socket buffer never overflows.
		if i%100 == 99 {
			c.query("ping", map[string]any{})
		}
	}
	for _, i := range []int{0, puts / 2, puts - 1} {
		r := c.query("get", map[string]any{"target": target(value(i))})
		if r.R == nil {
			t.Fatalf("get of put %d answered %+v", i, r)
		}
		if r.R.V != nil {
			t.Errorf("the node returned the value of put %d: it keeps BEP 44 items", i)
		}
	}
	after := liveHeap()
	grew := int64(after) - int64(before)
	t.Logf("live heap %d -> %d bytes after %d puts of ~1 KB (%+d)", before, after, puts, grew)
	// Kept, the items would take about 6 MB.
	if grew > 2<<20 {
		t.Fatalf("live heap grew by %d bytes over %d puts: the node keeps BEP 44 items", grew, puts)
	}
}

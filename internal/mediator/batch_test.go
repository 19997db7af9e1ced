package mediator

import (
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

func hashRange(from, n int) []string {
	hs := make([]string, n)
	for i := range hs {
		hs[i] = testID(from + i)
	}
	return hs
}

func TestBatchEvents(t *testing.T) {
	s := &Server{Batch: 5, MaxStrikes: 100}
	addr := startServer(t, s)
	a, b := dial(t, addr), dial(t, addr)
	a.emit("handshake", idA, 0)
	if ext := a.expectEstablished(); ext.Batch != 5 {
		t.Fatalf("established advertises batch %d, want 5", ext.Batch)
	}
	b.handshake(idB)
	a.emit("announce_many", []string{hash1, hash2, hash1})
	a.sync()
	// One peers answer per hash, in order, unknown hashes included.
	b.emit("get_peers_many", []string{hash2, testID(0x3003), hash1})
	for _, want := range []mediation.Peers{
		{Hash: hash2, IDs: []string{idA}}, {Hash: testID(0x3003), IDs: []string{}}, {Hash: hash1, IDs: []string{idA}},
	} {
		b.expect(want)
	}
	a.emit("finish_many", []string{hash1})
	a.sync()
	if got := b.peers(hash1); len(got) != 0 {
		t.Fatalf("finished hash still seeded: %v", got)
	}
	// A batch longer than advertised is dropped whole, as malformed.
	a.emit("announce_many", hashRange(0x4000, 6))
	a.sync()
	if got := b.peers(testID(0x4000)); len(got) != 0 {
		t.Fatalf("part of an oversized batch was taken: %v", got)
	}
	if testutil.ToFloat64(s.metrics.drops[0]) != 1 {
		t.Fatalf("oversized batch not counted as malformed")
	}
	// A malformed batch too.
	a.emit("announce_many", []any{hash1, 7})
	a.sync()
	if testutil.ToFloat64(s.metrics.drops[0]) != 2 {
		t.Fatalf("malformed batch not counted")
	}
	if n := testutil.ToFloat64(s.metrics.events[7]); n != 3 { // announce_many
		t.Fatalf("announce_many counted %v times, want 3", n)
	}
	// Hashes named, batches included: the first announce_many's 3 (the
	// dropped ones are not counted) and finish_many's 1.
	if a, f := testutil.ToFloat64(s.metrics.hashes[1]), testutil.ToFloat64(s.metrics.hashes[2]); a != 3 || f != 1 {
		t.Fatalf("hashes announced %v, finished %v; want 3, 1", a, f)
	}
}

// Rates and caps count hashes, not events: a batch costs its length.
func TestBatchHashRate(t *testing.T) {
	s := &Server{HashRate: 1, HashBurst: 12, MaxHashesPerConn: 100}
	addr := startServer(t, s)
	a, b := dial(t, addr), dial(t, addr)
	a.handshake(idA)
	b.handshake(idB)
	a.emit("announce_many", hashRange(0x5000, 10)) // 10 of 12
	a.emit("announce_many", hashRange(0x6000, 10)) // over: dropped whole
	a.emit("announce", testID(0x7000))             // 11 of 12
	a.sync()                                       // 12 of 12
	if got := b.peers(testID(0x5009)); len(got) != 1 {
		t.Fatalf("first batch: %v", got)
	}
	if got := b.peers(testID(0x6000)); len(got) != 0 {
		t.Fatalf("a batch over the hash rate was taken: %v", got)
	}
	if got := b.peers(testID(0x7000)); len(got) != 1 {
		t.Fatalf("a single announce within the rate was refused: %v", got)
	}
	if testutil.ToFloat64(s.metrics.drops[1]) != 1 {
		t.Fatalf("rate-limited drops = %v, want 1", testutil.ToFloat64(s.metrics.drops[1]))
	}
}

func TestBatchOff(t *testing.T) {
	s := &Server{Batch: -1}
	addr := startServer(t, s)
	a, b := dial(t, addr), dial(t, addr)
	a.emit("handshake", idA, 0)
	if ext := a.expectEstablished(); ext.Batch != 0 {
		t.Fatalf("established advertises batch %d with batches off", ext.Batch)
	}
	b.handshake(idB)
	a.emit("announce_many", []string{hash1})
	a.sync()
	if got := b.peers(hash1); len(got) != 0 {
		t.Fatalf("batch event taken with batches off: %v", got)
	}
}

// The answers to a large get_peers_many stay within the connection's queue:
// fewer ids per hash, all hashes answered.
func TestGetPeersManyLargeBatch(t *testing.T) {
	s := &Server{MaxPeersPerAnswer: 50}
	addr := startServer(t, s)
	hashes := hashRange(0x8000, 1000)
	var seeders []*client
	for i := range 60 {
		c := dial(t, addr)
		c.handshake(testID(0x9000 + i))
		c.emit("announce_many", hashes)
		c.sync()
		seeders = append(seeders, c)
	}
	b := dialOpt(t, addr, &socketio.DialOptions{MaxPending: 4096}) // a thousand answers at once
	b.handshake(idB)
	b.emit("get_peers_many", hashes)
	for i, h := range hashes {
		m, err := b.next()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		p, ok := m.(mediation.Peers)
		if !ok || p.Hash != h || len(p.IDs) == 0 || len(p.IDs) > 50 {
			t.Fatalf("answer %d: %#v", i, m)
		}
		if i == 0 {
			t.Logf("a batch of 1000 hashes with 60 seeders each: %d ids per answer", len(p.IDs))
		}
	}
	// One hash alone gets the full answer.
	if got := b.peers(hashes[0]); len(got) != 50 {
		t.Fatalf("single get_peers: %d ids, want 50", len(got))
	}
}

// Issue 12: one connection announces 100,000 hashes with the defaults.
func TestAnnounce100kHashesOneConnection(t *testing.T) {
	s := &Server{}
	addr := startServer(t, s)
	a := dial(t, addr)
	a.handshake(idA)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 100000; i += DefaultBatch {
		a.emit("announce_many", hashRange(0x100000+i, DefaultBatch))
	}
	a.sync()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if _, hashes, _ := s.reg.stats(); hashes != 100000 {
		t.Fatalf("%d hashes announced, want 100000", hashes)
	}
	t.Logf("100,000 hashes over one connection: heap +%d KiB (%d bytes a hash, the test's own client included)",
		(int64(after.HeapAlloc)-int64(before.HeapAlloc))>>10, (int64(after.HeapAlloc)-int64(before.HeapAlloc))/100000)
	// A peer asking about them gets answers.
	b := dial(t, addr)
	b.handshake(idB)
	if got := b.peers(testID(0x100000 + 99999)); len(got) != 1 {
		t.Fatalf("last hash: %v", got)
	}
}

func TestHashesEndpoint(t *testing.T) {
	s := &Server{}
	addr := startServer(t, s)
	var peers []*client
	for i := range 3 {
		c := dial(t, addr)
		c.handshake(testID(0xc000 + i))
		peers = append(peers, c)
	}
	// hash1 has 3 seeders, hash2 2, and 150 hashes one each.
	for i, c := range peers {
		c.emit("announce", hash1)
		if i > 0 {
			c.emit("announce", hash2)
		}
	}
	peers[0].emit("announce_many", hashRange(0xd000, 150))
	for _, c := range peers {
		c.sync()
	}
	resp, err := http.Get("http://" + addr + "/hashes")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/hashes: %s, headers %v", resp.Status, resp.Header)
	}
	var got struct {
		Hashes []struct {
			Hash    string `json:"hash"`
			Seeders int    `json:"seeders"`
		} `json:"hashes"`
		Total int `json:"total"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("/hashes body %q: %v", body, err)
	}
	if got.Total != 152 || len(got.Hashes) != 100 {
		t.Fatalf("total %d, %d listed; want 152, 100", got.Total, len(got.Hashes))
	}
	if got.Hashes[0].Hash != hash1 || got.Hashes[0].Seeders != 3 || got.Hashes[1].Hash != hash2 || got.Hashes[1].Seeders != 2 {
		t.Fatalf("most seeded first: %+v", got.Hashes[:2])
	}
	if !slices.IsSortedFunc(got.Hashes[2:], func(a, b struct {
		Hash    string `json:"hash"`
		Seeders int    `json:"seeders"`
	}) int {
		return compareStrings(a.Hash, b.Hash)
	}) {
		t.Fatal("ties not ordered by hash")
	}
	// Cached: a new seeder shows up only after the cache period.
	for _, c := range peers {
		c.emit("finish", hash1)
		c.sync()
	}
	resp, err = http.Get("http://" + addr + "/hashes")
	if err != nil {
		t.Fatal(err)
	}
	body2, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body2) != string(body) {
		t.Fatal("/hashes recomputed within its cache period")
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/hashes", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /hashes: %v %v", resp.Status, err)
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

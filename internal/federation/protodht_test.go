package federation

import (
	"bufio"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/p2pcdn/p2pcdn/internal/testenv"
)

// protoNode is testdata/protomediator/dhtnode.js: an npm bittorrent-dht 10
// node driven as the prototype's mediator drives it.
type protoNode struct {
	enc    *json.Encoder
	events chan protoEvent
	addr   netip.AddrPort // its UDP address
	id     string
}

type protoEvent struct {
	Ev    string `json:"ev"`
	Hash  string `json:"hash"`
	Host  string `json:"host"`
	Port  int    `json:"port"`
	Nodes int    `json:"nodes"`
	Err   string `json:"err"`
}

func startProtoNode(t testing.TB, bootstrap string) *protoNode {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "protomediator")
	testenv.NPMInstall(t, dir)
	id := randomID(t)
	cmd := exec.Command(testenv.Node(t), "dhtnode.js", id, bootstrap)
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &protoNode{enc: json.NewEncoder(stdin), events: make(chan protoEvent, 1000), id: id}
	go func() {
		defer close(p.events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e protoEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				select {
				case p.events <- e:
				default: // the test stopped listening
				}
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close() // dhtnode.js exits when stdin closes
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := p.wait(t, ctx, "listening", func(e protoEvent) bool { return e.Ev == "listening" })
	p.addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(e.Port))
	return p
}

func (p *protoNode) cmd(t testing.TB, c map[string]any) {
	t.Helper()
	if err := p.enc.Encode(c); err != nil {
		t.Fatalf("writing to dhtnode.js: %v", err)
	}
}

func (p *protoNode) wait(t testing.TB, ctx context.Context, what string, ok func(protoEvent) bool) protoEvent {
	t.Helper()
	for {
		select {
		case <-ctx.Done():
			t.Fatalf("dhtnode.js: timed out waiting for %s", what)
		case e, open := <-p.events:
			if !open {
				t.Fatalf("dhtnode.js exited while waiting for %s", what)
			}
			if e.Ev == "error" {
				t.Fatalf("dhtnode.js: %s", e.Err)
			}
			if ok(e) {
				return e
			}
		}
	}
}

// lookupUntil repeats the prototype node's lookup of hash until it yields
// a value for port.
func (p *protoNode) lookupUntil(t testing.TB, ctx context.Context, hash string, port int) {
	t.Helper()
	for {
		p.cmd(t, map[string]any{"cmd": "lookup", "hash": hash})
		for {
			e := p.wait(t, ctx, "lookup of "+hash, func(e protoEvent) bool {
				return e.Hash == hash && (e.Ev == "peer" || e.Ev == "looked_up")
			})
			if e.Ev == "peer" && e.Port == port {
				if e.Host != "127.0.0.1" {
					t.Fatalf("the prototype node found port %d at host %q, want 127.0.0.1", port, e.Host)
				}
				return
			}
			if e.Ev == "looked_up" {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the prototype node never found port %d under %s", port, hash)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestPrototypeDHTNodeFindsUs: a bittorrent-dht node bootstrapping from our
// mediator's DHT node finds our mediator under the prototype's 40-byte key
// of a hash our peer seeds, and our announce_peer reaches it.
func TestPrototypeDHTNodeFindsUs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m := newMediator(t, "A", nil)
	m.start(t)
	p := startProtoNode(t, m.fed.DHTAddr().String())
	p.wait(t, ctx, "ready", func(e protoEvent) bool { return e.Ev == "ready" })

	hash := randomHash(t)
	seeder := dialPeer(t, ctx, m)
	if err := seeder.Announce(ctx, hash); err != nil {
		t.Fatal(err)
	}
	// Our announce walk stores us on the prototype node, with a token it
	// issued.
	e := p.wait(t, ctx, "our announce_peer", func(e protoEvent) bool { return e.Ev == "announce_peer" && e.Hash == hash })
	if e.Host != "127.0.0.1" {
		t.Fatalf("announce_peer from %q", e.Host)
	}
	port := m.fed.cfg.PublicPort
	p.lookupUntil(t, ctx, hash, port)
}

// TestWeFindPrototypeAnnouncements: a bittorrent-dht node announces a
// 40-byte key with a Socket.IO port; our node stores it (so it answers other
// prototype nodes with it) and our 40-byte lookup finds it.
func TestWeFindPrototypeAnnouncements(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m := newMediator(t, "A", nil)
	m.start(t)
	p := startProtoNode(t, m.fed.DHTAddr().String())
	p.wait(t, ctx, "ready", func(e protoEvent) bool { return e.Ev == "ready" })

	hash := randomHash(t)
	const port = 4321
	p.cmd(t, map[string]any{"cmd": "announce", "hash": hash, "port": port})
	e := p.wait(t, ctx, "announced", func(e protoEvent) bool { return e.Ev == "announced" && e.Hash == hash })
	if e.Err != "" || e.Nodes < 1 {
		t.Fatalf("the prototype node's announce: %d nodes, error %q", e.Nodes, e.Err)
	}
	pkey, _ := ProtoKey(hash)
	want := netip.MustParseAddrPort("127.0.0.1:" + strconv.Itoa(port))
	if got := m.fed.proto.store.get(pkey, time.Now()); !slices.Contains(got, want) {
		t.Fatalf("our node stores %v under the 40-byte key, want %v", got, want)
	}
	// The 20-byte key (the hash's first 20 ASCII bytes, which the library
	// would have kept) holds nothing.
	if got := m.fed.store.get([20]byte(pkey[:20]), time.Now()); len(got) != 0 {
		t.Fatalf("the library stored the prototype's announcement under a truncated key: %v", got)
	}

	// A second mediator of ours, knowing only the first, finds it by
	// walking.
	b := newMediator(t, "B", nil)
	b.start(t, m)
	waitFor(t, ctx, "B bootstrapped", func() bool { return b.nodes() > 0 })
	var found []netip.AddrPort
	if _, err := b.fed.proto.lookup(ctx, pkey, func(ap netip.AddrPort) { found = append(found, ap) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(found, want) {
		t.Fatalf("B's 40-byte lookup found %v, want %v", found, want)
	}
}

// TestProtoWalksMeetBittorrentDHT: in a DHT of 64 of our nodes and one
// bittorrent-dht node, the prototype node's announce lands on the nodes its
// walk visits, converging on those closest to the key by its measure, and
// our walk towards the same key ends on nodes among those: both sides agree
// on what "closest" means for a 40-byte key (a walk towards another target
// would end on nodes the prototype never visited). And our announcement
// lands where the prototype's lookup finds it.
func TestProtoWalksMeetBittorrentDHT(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 64 DHT nodes; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const n = 64
	ms := make([]*testMediator, n)
	for i := range ms {
		ms[i] = newMediator(t, "M"+strconv.Itoa(i), nil)
		ms[i].start(t)
	}
	// Every node learns of every other; each routing table keeps what
	// Kademlia keeps of them.
	for _, m := range ms {
		waitFor(t, ctx, "nodes running", func() bool { return m.node() != nil })
	}
	for _, m := range ms {
		for _, o := range ms {
			if o != m {
				ap, _ := addrPortFromNet(o.fed.DHTAddr())
				var ni krpc.NodeInfo
				ni.ID = o.fed.proto.id
				ni.Addr.FromAddrPort(ap)
				m.node().AddNode(ni)
			}
		}
	}
	p := startProtoNode(t, ms[n/2].fed.DHTAddr().String())
	p.wait(t, ctx, "ready", func(e protoEvent) bool { return e.Ev == "ready" })

	hash := randomHash(t)
	pkey, _ := ProtoKey(hash)
	const port = 4321
	p.cmd(t, map[string]any{"cmd": "announce", "hash": hash, "port": port})
	e := p.wait(t, ctx, "announced", func(e protoEvent) bool { return e.Ev == "announced" && e.Hash == hash })
	if e.Nodes < protoK {
		t.Fatalf("the prototype's announce reached %d nodes (%s)", e.Nodes, e.Err)
	}
	holders := make(map[netip.AddrPort]bool)
	for _, m := range ms {
		if len(m.fed.proto.store.get(pkey, time.Now())) > 0 {
			ap, _ := addrPortFromNet(m.fed.DHTAddr())
			holders[ap] = true
		}
	}
	t.Logf("the prototype announced on %d of %d nodes (%d accepted)", len(holders), n, e.Nodes)
	if len(holders) == n {
		t.Fatal("the prototype stored its announcement on every node: the DHT is too small for this test")
	}
	for i, m := range []*testMediator{ms[0], ms[n-1]} {
		answered, err := m.fed.proto.walk(ctx, pkey, func(netip.AddrPort) {})
		if err != nil {
			t.Fatal(err)
		}
		if len(answered) < protoK {
			t.Fatalf("walk %d: %d nodes answered", i, len(answered))
		}
		for _, w := range answered[:protoK] {
			if !holders[w.addr] && w.addr != p.addr {
				t.Errorf("walk %d: our walk's closest nodes include %v, where the prototype did not announce (it announced on %d nodes)", i, w.addr, len(holders))
			}
		}
	}

	// Ours announces; the prototype's lookup finds it.
	mine := randomHash(t)
	mkey, _ := ProtoKey(mine)
	if got, err := ms[3].fed.proto.announce(ctx, mkey, 5555); err != nil || got < protoK-1 {
		t.Fatalf("our 40-byte announce reached %d nodes: %v", got, err)
	}
	p.lookupUntil(t, ctx, mine, 5555)
}

// kbucketDistance is k-bucket 5's distance, as bittorrent-dht 10 uses it,
// in the same float64 arithmetic as JavaScript.
func kbucketDistance(a, b []byte) float64 {
	short, long := a, b
	if len(short) > len(long) {
		short, long = long, short
	}
	var d float64
	i := 0
	for ; i < len(short); i++ {
		d = d*256 + float64(a[i]^b[i])
	}
	for ; i < len(long); i++ {
		d = d*256 + 255
	}
	return d
}

// TestProtoTargetOrdersLikeKBucket: for random 40-byte keys and node ids,
// the protoK nodes closest to protoTarget(key) by XOR are among the 20 (k-rpc's
// K) closest by k-bucket's distance to the whole key, and in the same order.
func TestProtoTargetOrdersLikeKBucket(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 40 {
		var key [40]byte
		const hexDigits = "0123456789abcdef"
		for i := range key {
			key[i] = hexDigits[r.IntN(16)]
		}
		ids := make([][20]byte, 300)
		for i := range ids {
			for j := range ids[i] {
				ids[i][j] = byte(r.UintN(256))
			}
			// Nodes near the key's region of id space, as the closest are.
			copy(ids[i][:r.IntN(4)], key[:])
		}
		ours := slices.Clone(ids)
		slices.SortFunc(ours, func(a, b [20]byte) int { return compareDistance(protoTarget(key), a, b) })
		theirs := slices.Clone(ids)
		slices.SortStableFunc(theirs, func(a, b [20]byte) int {
			da, db := kbucketDistance(a[:], key[:]), kbucketDistance(b[:], key[:])
			switch {
			case da < db:
				return -1
			case da > db:
				return 1
			}
			return 0
		})
		for i, id := range ours[:protoK] {
			if j := slices.Index(theirs[:20], id); j < 0 {
				t.Fatalf("key %s: our closest node %d (%x) is not among k-bucket's 20 closest", key, i, id)
			}
		}
	}
}

// node returns m's DHT node, nil before it runs.
func (m *testMediator) node() *dht.Server {
	m.fed.mu.Lock()
	defer m.fed.mu.Unlock()
	return m.fed.node
}

// nodes counts the routing table of m's DHT node (0 before it runs).
func (m *testMediator) nodes() int {
	if node := m.node(); node != nil {
		return node.NumNodes()
	}
	return 0
}

// query40 sends a query with a 40-byte info_hash from c and returns the
// answer as the 40-byte layer decodes it.
func (c *krpcClient) query40(t testing.TB, q string, a map[string]any) krpcMsg40 {
	t.Helper()
	buf := make([]byte, 65536)
	for try := 0; try < 20; try++ {
		tid := c.send(q, a)
		c.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, _, err := c.conn.ReadFrom(buf)
			if err != nil {
				break
			}
			if m, err := decodeKRPC40(buf[:n]); err == nil && m.T == tid {
				return m
			}
		}
	}
	t.Fatalf("no answer to %s", q)
	return krpcMsg40{}
}

// TestProtoQueries plays a prototype node against our DHT node: get_peers
// for a 40-byte key answers with a token and our node id, announce_peer
// needs that token (from the same address) and a valid port, and what it
// stores comes back in later answers, IPv4 only to an IPv4 asker.
func TestProtoQueries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMediator(t, "A", func(c *Config) {
		c.SendRate, c.SendBurst = 1e6, 1e6
		c.Registerer = reg
	})
	m.start(t)
	c := newKRPCClient(t, m.fed.DHTAddr())
	other := newKRPCClientAt(t, "127.0.0.2", m.fed.DHTAddr())
	key := randomHash(t)
	r := c.query40(t, "get_peers", map[string]any{"info_hash": key})
	if r.Y != "r" || r.R == nil || r.R.ID != string(m.fed.proto.id[:]) || r.R.Token == "" || len(r.R.Values) != 0 {
		t.Fatalf("get_peers answered %+v", r)
	}
	token := r.R.Token
	for _, bad := range []struct {
		name string
		a    map[string]any
	}{
		{"no token", map[string]any{"info_hash": key, "port": 4000}},
		{"a wrong token", map[string]any{"info_hash": key, "port": 4000, "token": "12345678"}},
		{"port 0", map[string]any{"info_hash": key, "port": 0, "token": token}},
		{"port 70000", map[string]any{"info_hash": key, "port": 70000, "token": token}},
	} {
		if r := c.query40(t, "announce_peer", bad.a); r.Y != "e" {
			t.Errorf("announce_peer with %s answered %+v, want an error", bad.name, r)
		}
	}
	// Another address's token is not ours.
	if r := other.query40(t, "announce_peer", map[string]any{"info_hash": key, "port": 4000, "token": token}); r.Y != "e" {
		t.Errorf("announce_peer with another address's token answered %+v", r)
	}
	if r := c.query40(t, "announce_peer", map[string]any{"info_hash": key, "port": 4000, "token": token}); r.Y != "r" {
		t.Fatalf("announce_peer answered %+v", r)
	}
	if r := c.query40(t, "announce_peer", map[string]any{"info_hash": key, "implied_port": 1, "port": 1, "token": token}); r.Y != "r" {
		t.Fatalf("announce_peer with implied_port answered %+v", r)
	}
	r = other.query40(t, "get_peers", map[string]any{"info_hash": key})
	got := parseValues(r.R.Values, netip.AddrPort{})
	own, _ := addrPortFromNet(c.conn.LocalAddr())
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:4000"), own}
	slices.SortFunc(got, netip.AddrPort.Compare)
	slices.SortFunc(want, netip.AddrPort.Compare)
	if !slices.Equal(got, want) {
		t.Fatalf("get_peers values %v, want %v", got, want)
	}
	// An IPv6 value stays out of answers to IPv4 askers.
	pkey, _ := ProtoKey(key)
	m.fed.proto.store.add(pkey, netip.MustParseAddrPort("[2001:db8::1]:4000"), time.Now())
	if r := other.query40(t, "get_peers", map[string]any{"info_hash": key}); len(r.R.Values) != 2 {
		t.Fatalf("get_peers to an IPv4 asker holds %d values, want the 2 IPv4 ones", len(r.R.Values))
	}
	// A 20-byte query still reaches the library.
	if r := c.query("get_peers", map[string]any{"info_hash": strings.Repeat("x", 20)}); r.R == nil {
		t.Fatalf("20-byte get_peers answered %+v", r)
	}

	// What /metrics shows of it.
	wantMetrics := map[string]float64{
		`p2pcdn_dht_prototype_queries_total{kind="get_peers"}`:        3,
		`p2pcdn_dht_prototype_queries_total{kind="announce_peer"}`:    2,
		`p2pcdn_dht_prototype_queries_total{kind="announce_refused"}`: 5,
		`p2pcdn_dht_prototype_stored_keys`:                            1,
	}
	for name, v := range wantMetrics {
		if got := metricValue(t, reg, name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
}

// metricValue finds one sample ("name" or "name{label="value"}") in reg.
func metricValue(t testing.TB, reg *prometheus.Registry, sample string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
				}
				name += "{" + strings.Join(labels, ",") + "}"
			}
			if name != sample {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no sample %s in the registry", sample)
	return 0
}

// TestProtoAnnounceFloodIsBounded: one node announcing thousands of
// 40-byte keys with a valid token fills our store up to its cap and no
// further.
func TestProtoAnnounceFloodIsBounded(t *testing.T) {
	const keys, maxKeys = 3000, 500
	m := newMediator(t, "A", func(c *Config) { c.SendRate, c.SendBurst = 1e6, 1e6 })
	m.fed.proto.store.maxKeys = maxKeys // before Run: no lock needed yet
	m.start(t)
	c := newKRPCClient(t, m.fed.DHTAddr())
	r := c.query40(t, "get_peers", map[string]any{"info_hash": randomHash(t)})
	for i := range keys {
		c.send("announce_peer", map[string]any{"info_hash": randomHash(t), "port": 4000 + i%1000, "token": r.R.Token})
		if i%100 == 99 {
			c.query("ping", map[string]any{})
		}
	}
	c.query("ping", map[string]any{})
	m.fed.proto.store.mu.Lock()
	n := len(m.fed.proto.store.m)
	m.fed.proto.store.mu.Unlock()
	if n != maxKeys {
		t.Fatalf("the 40-byte store holds %d keys after %d announces, want its cap %d", n, keys, maxKeys)
	}
}

// TestProtoAnswersShareTheSendLimit: a flood of 40-byte get_peers gets no
// more answers than the node's send limit allows, the limit the library's
// own answers count against too.
func TestProtoAnswersShareTheSendLimit(t *testing.T) {
	const queries, rate, burst = 2000, 50, 50
	m := newMediator(t, "A", func(c *Config) { c.SendRate, c.SendBurst = rate, burst })
	m.start(t)
	c := newKRPCClient(t, m.fed.DHTAddr())
	begin := time.Now()
	for range queries {
		c.send("get_peers", map[string]any{"info_hash": randomHash(t)})
	}
	// Count answers until the node has been quiet for a while.
	answers := 0
	buf := make([]byte, 65536)
	for {
		c.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			break
		}
		if m, err := decodeKRPC40(buf[:n]); err == nil && m.Y == "r" {
			answers++
		}
	}
	allowed := burst + int(rate*time.Since(begin).Seconds()) + 1
	t.Logf("%d answers to %d queries (at most %d allowed)", answers, queries, allowed)
	if answers == 0 || answers > allowed {
		t.Fatalf("%d answers to %d queries, want between 1 and %d", answers, queries, allowed)
	}
}

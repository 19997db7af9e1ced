package federation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediator"
	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
)

// testMediator is a mediator.Server with a Federation, both on loopback.
type testMediator struct {
	name string
	srv  *mediator.Server
	fed  *Federation
	addr string // Socket.IO host:port
	stop context.CancelFunc
	// srvDone and done close when Serve and Run have returned.
	srvDone, done chan struct{}
	started       bool
}

func randomID(t testing.TB) string {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func testLogger() *slog.Logger {
	if os.Getenv("FEDERATION_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newMediator creates a mediator and its federation without starting them,
// so several can learn each other's DHT addresses first.
func newMediator(t testing.TB, name string, tune func(*Config)) *testMediator {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := testLogger().With("mediator", name)
	// A high event limit lets the benchmark's peer ask every millisecond.
	srv := &mediator.Server{Logger: log, EventRate: 5000, EventBurst: 5000}
	cfg := Config{
		Mediator:           srv,
		MediatorID:         randomID(t),
		PublicPort:         ln.Addr().(*net.TCPAddr).Port,
		DHTListen:          "127.0.0.1:0",
		Logger:             log,
		ScanInterval:       100 * time.Millisecond,
		ReannounceInterval: time.Minute,
		LookupInterval:     300 * time.Millisecond,
		AskInterval:        100 * time.Millisecond,
		QueryResendDelay:   500 * time.Millisecond,
	}
	if tune != nil {
		tune(&cfg)
	}
	fed, err := New(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	srv.Federation = fed
	m := &testMediator{name: name, srv: srv, fed: fed, addr: ln.Addr().String(), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	// Serving starts now (the listener is open anyway); the federation is
	// started by start.
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		if err := srv.Serve(ctx, ln); err != nil {
			t.Errorf("%s: Serve: %v", name, err)
		}
	}()
	m.srvDone = srvDone
	t.Cleanup(m.kill)
	return m
}

func (m *testMediator) start(t testing.TB, bootstrap ...*testMediator) {
	for _, b := range bootstrap {
		m.fed.cfg.Bootstrap = append(m.fed.cfg.Bootstrap, b.fed.DHTAddr().String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	prev := m.stop
	m.stop = func() { cancel(); prev() }
	m.started = true
	go func() {
		defer close(m.done)
		if err := m.fed.Run(ctx); err != nil {
			t.Errorf("%s: Run: %v", m.name, err)
		}
	}()
}

// kill stops the mediator and its federation and waits for both.
func (m *testMediator) kill() {
	m.stop()
	<-m.srvDone
	if !m.started {
		m.fed.Close()
		return
	}
	<-m.done
}

// startMediators starts n mediators that bootstrap from each other.
func startMediators(t testing.TB, n int, tune func(*Config)) []*testMediator {
	ms := make([]*testMediator, n)
	for i := range ms {
		ms[i] = newMediator(t, string(rune('A'+i)), tune)
	}
	for i, m := range ms {
		var others []*testMediator
		for j, o := range ms {
			if j != i {
				others = append(others, o)
			}
		}
		m.start(t, others...)
	}
	return ms
}

func dialPeer(t testing.TB, ctx context.Context, m *testMediator) *mediatorclient.Client {
	t.Helper()
	c, err := mediatorclient.Dial(ctx, "http://"+m.addr, mediatorclient.Options{Logger: testLogger()})
	if err != nil {
		t.Fatalf("dial %s: %v", m.name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func randomHash(t testing.TB) string { return randomID(t) }

// waitPeers asks for hash until an answer satisfies ok.
func waitPeers(t testing.TB, ctx context.Context, c *mediatorclient.Client, hash string, ok func([]string) bool) []string {
	t.Helper()
	sub := c.Subscribe(hash)
	defer sub.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last []string
	for {
		if err := c.GetPeers(ctx, hash); err != nil && !errors.Is(err, mediatorclient.ErrNotConnected) {
			t.Fatalf("get_peers: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no satisfying peers answer for %s; last answer %v", hash, last)
		case ev := <-sub.C:
			if p, isPeers := ev.(mediatorclient.Peers); isPeers {
				last = p.IDs
				if ok(p.IDs) {
					return p.IDs
				}
			}
		case <-tick.C:
		}
	}
}

func contains(id string) func([]string) bool {
	return func(ids []string) bool { return slices.Contains(ids, id) }
}

// signalBothWays sends an offer from a to b and an answer back, and checks
// both arrive with the right sender.
func signalBothWays(t testing.TB, ctx context.Context, hash string, a, b *mediatorclient.Client) {
	t.Helper()
	subA, subB := a.Subscribe(hash), b.Subscribe(hash)
	defer subA.Close()
	defer subB.Close()
	offer := fmt.Sprintf(`{"type":"offer","sdp":"%s"}`, randomID(t))
	answer := fmt.Sprintf(`{"type":"answer","sdp":"%s"}`, randomID(t))
	expect := func(sub *mediatorclient.Subscription, from, data string, resend func()) {
		t.Helper()
		// A signal sent before a route exists may be lost, as on the real
		// network, where the WebRTC attempt is retried; so resend.
		resend()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				t.Fatalf("signal %s from %s never arrived", data, from)
			case ev := <-sub.C:
				if s, ok := ev.(mediatorclient.Signal); ok {
					if s.From != from || s.Data != data {
						t.Fatalf("got signal from %s data %q, want from %s data %q", s.From, s.Data, from, data)
					}
					return
				}
			case <-tick.C:
				resend()
			}
		}
	}
	expect(subB, a.PeerID(), offer, func() { a.Signal(ctx, hash, b.PeerID(), offer) })
	expect(subA, b.PeerID(), answer, func() { b.Signal(ctx, hash, a.PeerID(), answer) })
}

func TestSeederFoundAndSignalledAcrossMediators(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	ms := startMediators(t, 3, nil)
	a, c := ms[0], ms[2]
	hash := randomHash(t)
	seeder := dialPeer(t, ctx, a)
	if err := seeder.Announce(ctx, hash); err != nil {
		t.Fatal(err)
	}
	down := dialPeer(t, ctx, c)
	ids := waitPeers(t, ctx, down, hash, contains(seeder.PeerID()))
	if slices.Contains(ids, down.PeerID()) {
		t.Fatalf("answer %v holds the asker", ids)
	}
	signalBothWays(t, ctx, hash, down, seeder)
	// The answer went back over C's replication connection to A, which the
	// offer came through; the relay-key lookup was not needed.
	a.fed.mu.Lock()
	relayed := a.fed.relayed
	a.fed.mu.Unlock()
	if relayed != 0 {
		t.Fatalf("A sent %d signals through the relay-key lookup, want the answer sent back over the inbound connection", relayed)
	}

	// C holds exactly one replication link, to A, and none to itself.
	c.fed.mu.Lock()
	var links []string
	for ap := range c.fed.links {
		links = append(links, ap.String())
	}
	c.fed.mu.Unlock()
	if len(links) != 1 || links[0] != a.addr {
		t.Fatalf("C's links %v, want only A at %s", links, a.addr)
	}
}

func TestKilledMediatorIsRoutedAround(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	ms := startMediators(t, 3, nil)
	a, b, c := ms[0], ms[1], ms[2]
	hash := randomHash(t)
	s1, s2 := dialPeer(t, ctx, a), dialPeer(t, ctx, b)
	for _, s := range []*mediatorclient.Client{s1, s2} {
		if err := s.Announce(ctx, hash); err != nil {
			t.Fatal(err)
		}
	}
	down := dialPeer(t, ctx, c)
	waitPeers(t, ctx, down, hash, func(ids []string) bool {
		return slices.Contains(ids, s1.PeerID()) && slices.Contains(ids, s2.PeerID())
	})
	a.kill()
	waitPeers(t, ctx, down, hash, func(ids []string) bool {
		return !slices.Contains(ids, s1.PeerID()) && slices.Contains(ids, s2.PeerID())
	})
	signalBothWays(t, ctx, hash, down, s2)
}

func TestLateMediatorFindsExistingSeeders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	ms := startMediators(t, 3, nil)
	a, b := ms[0], ms[1]
	hash := randomHash(t)
	seeder := dialPeer(t, ctx, a)
	if err := seeder.Announce(ctx, hash); err != nil {
		t.Fatal(err)
	}
	// Wait until A's announcement is stored elsewhere, so the late mediator
	// finds it through the DHT rather than by asking A first.
	key, _ := HashKey(hash)
	waitFor(t, ctx, "A's announcement stored on B or C", func() bool {
		return len(b.fed.store.get(key, time.Now())) > 0 || len(ms[2].fed.store.get(key, time.Now())) > 0
	})

	late := newMediator(t, "L", nil)
	late.start(t, b) // it knows only B
	down := dialPeer(t, ctx, late)
	waitPeers(t, ctx, down, hash, contains(seeder.PeerID()))
	signalBothWays(t, ctx, hash, down, seeder)
}

func TestAnnouncementsStopWhenSeedersLeave(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	ms := startMediators(t, 3, func(c *Config) {
		c.ReannounceInterval = 300 * time.Millisecond
		c.PeerTTL = 2 * time.Second
		c.IdleTimeout = 2 * time.Second
	})
	a, b, c := ms[0], ms[1], ms[2]
	hash, other := randomHash(t), randomHash(t)
	seeder := dialPeer(t, ctx, a)
	for _, h := range []string{hash, other} {
		if err := seeder.Announce(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	key, _ := HashKey(hash)
	otherKey, _ := HashKey(other)
	stored := func(m *testMediator, k [20]byte) bool { return len(m.fed.store.get(k, time.Now())) > 0 }
	waitFor(t, ctx, "announcements on B and C", func() bool {
		return stored(b, key) && stored(c, key) && stored(b, otherKey) && stored(c, otherKey)
	})
	down := dialPeer(t, ctx, c)
	waitPeers(t, ctx, down, hash, contains(seeder.PeerID()))

	if err := seeder.Finish(ctx, hash); err != nil {
		t.Fatal(err)
	}
	// A re-announces every 300 ms and values live 2 s: the value of hash
	// disappears only if A stopped announcing it, while the other hash,
	// still seeded, stays.
	waitFor(t, ctx, "hash forgotten on B and C", func() bool { return !stored(b, key) && !stored(c, key) })
	if !stored(b, otherKey) || !stored(c, otherKey) {
		t.Fatal("the hash still seeded is no longer announced")
	}
	waitPeers(t, ctx, down, hash, func(ids []string) bool { return !slices.Contains(ids, seeder.PeerID()) })
}

func waitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestNeverLinksToItself(t *testing.T) {
	m := newMediator(t, "A", nil)
	defer m.kill()
	m.start(t)
	waitFor(t, context.Background(), "running", func() bool {
		m.fed.mu.Lock()
		defer m.fed.mu.Unlock()
		return m.fed.state == stateRunning
	})
	self := m.fed.cfg.PublicPort
	for _, s := range []string{"127.0.0.1", "::1", "0.0.0.0"} {
		ap := netip.AddrPortFrom(netip.MustParseAddr(s), uint16(self))
		if l := m.fed.linkTo(ap); l != nil {
			t.Fatalf("linked to own address %v", ap)
		}
	}
}

// TestDHTSurvivesHostilePackets sends packets that crash an unguarded
// anacrolix/dht v2.23.0 node (and some junk) to our node, then checks it
// still answers a ping.
func TestDHTSurvivesHostilePackets(t *testing.T) {
	m := newMediator(t, "A", nil)
	m.start(t)
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := m.fed.DHTAddr()
	for _, p := range []string{
		"d1:rd6:valuesl0:ee1:t2:aa1:y1:re",
		"d1:rd6:valuesl1:xee1:t2:aa1:y1:re",
		"d1:ad2:id20:abcdefghij01234567899:info_hash40:0123456789abcdef0123456789abcdef01234567e1:q9:get_peers1:t2:bb1:y1:qe",
		"\x00\x01garbage",
	} {
		if _, err := conn.WriteTo([]byte(p), to); err != nil {
			t.Fatal(err)
		}
	}
	ping := "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:pp1:y1:qe"
	buf := make([]byte, 1500)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := conn.WriteTo([]byte(ping), to); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := conn.ReadFrom(buf)
		if err == nil && strings.Contains(string(buf[:n]), "1:t2:pp") && strings.Contains(string(buf[:n]), "1:y1:r") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DHT node stopped answering pings (last read: %q, %v)", buf[:max(n, 0)], err)
		}
	}
	if d := m.fed.guard.dropped.Load(); d < 2 {
		t.Fatalf("guard dropped %d packets, want the 2 that crash the library", d)
	}
}

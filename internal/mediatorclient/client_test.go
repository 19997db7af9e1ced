package mediatorclient_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/mediator"
	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// waitTimeout only bounds tests that would otherwise hang on a busy machine.
const waitTimeout = 30 * time.Second

var (
	hash1 = fmt.Sprintf("%040x", 0x1001)
	hash2 = fmt.Sprintf("%040x", 0x1002)
	hash3 = fmt.Sprintf("%040x", 0x1003)
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// mediatorProc is a Go mediator served on a loopback address, restartable
// on the same port.
type mediatorProc struct {
	t      *testing.T
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func startMediator(t *testing.T, addr string) *mediatorProc {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &mediatorProc{t: t, addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	srv := &mediator.Server{Logger: quiet()}
	go func() { m.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(m.stop)
	return m
}

func (m *mediatorProc) url() string { return "ws://" + m.addr }

func (m *mediatorProc) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.cancel = nil
	if err := <-m.done; err != nil {
		m.t.Errorf("mediator: %v", err)
	}
}

func dial(t *testing.T, url string, opt mediatorclient.Options) *mediatorclient.Client {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = quiet()
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := mediatorclient.Dial(ctx, url, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func findPeers(t *testing.T, c *mediatorclient.Client, hash string) []string {
	t.Helper()
	ids, err := c.FindPeers(ctx(t), hash, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func next(t *testing.T, ch <-chan mediatorclient.Event) mediatorclient.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event channel closed")
		}
		return ev
	case <-time.After(waitTimeout):
		t.Fatal("no event")
	}
	return nil
}

func TestPeersMeetAndSignalBothWays(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	seeder := dial(t, m.url(), mediatorclient.Options{})
	leecher := dial(t, m.url(), mediatorclient.Options{})
	if !mediation.ValidPeerID(seeder.PeerID()) || seeder.PeerID() == leecher.PeerID() {
		t.Fatalf("bad random ids %q %q", seeder.PeerID(), leecher.PeerID())
	}
	if err := seeder.Announce(ctx(t), hash1); err != nil {
		t.Fatal(err)
	}
	if got := findPeers(t, leecher, hash1); !slices.Equal(got, []string{seeder.PeerID()}) {
		t.Fatalf("FindPeers = %v, want the seeder", got)
	}
	// The seeder takes every event through Events; the leecher subscribes.
	sub := leecher.Subscribe(hash1)
	defer sub.Close()
	if err := leecher.Signal(ctx(t), hash1, seeder.PeerID(), `{"type":"offer","sdp":"o"}`); err != nil {
		t.Fatal(err)
	}
	want := mediatorclient.Signal{Hash: hash1, From: leecher.PeerID(), Data: `{"type":"offer","sdp":"o"}`}
	if got := next(t, seeder.Events()); got != want {
		t.Fatalf("seeder got %#v, want %#v", got, want)
	}
	if err := seeder.Signal(ctx(t), hash1, leecher.PeerID(), `{"type":"answer","sdp":"a"}`); err != nil {
		t.Fatal(err)
	}
	want = mediatorclient.Signal{Hash: hash1, From: seeder.PeerID(), Data: `{"type":"answer","sdp":"a"}`}
	if got := next(t, sub.C); got != want {
		t.Fatalf("leecher got %#v, want %#v", got, want)
	}
}

func TestGetPeersAnswersEmptyForUnknownHash(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	c := dial(t, m.url(), mediatorclient.Options{})
	sub := c.Subscribe(hash1)
	defer sub.Close()
	if err := c.GetPeers(ctx(t), hash1); err != nil {
		t.Fatal(err)
	}
	got := next(t, sub.C)
	if p, ok := got.(mediatorclient.Peers); !ok || p.Hash != hash1 || len(p.IDs) != 0 {
		t.Fatalf("got %#v, want an empty Peers", got)
	}
}

func TestFinishOneHashOnly(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	seeder := dial(t, m.url(), mediatorclient.Options{})
	leecher := dial(t, m.url(), mediatorclient.Options{})
	for _, h := range []string{hash1, hash2} {
		if err := seeder.Announce(ctx(t), h); err != nil {
			t.Fatal(err)
		}
	}
	findPeers(t, leecher, hash1)
	if err := seeder.Finish(ctx(t), hash1); err != nil {
		t.Fatal(err)
	}
	sub := leecher.Subscribe(hash1)
	defer sub.Close()
	for {
		leecher.GetPeers(ctx(t), hash1)
		if p := next(t, sub.C).(mediatorclient.Peers); len(p.IDs) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := findPeers(t, leecher, hash2); !slices.Equal(got, []string{seeder.PeerID()}) {
		t.Fatalf("hash2 seeders %v", got)
	}
}

func TestDisconnectRemovesSeeder(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	seeder := dial(t, m.url(), mediatorclient.Options{})
	leecher := dial(t, m.url(), mediatorclient.Options{})
	seeder.Announce(ctx(t), hash1)
	findPeers(t, leecher, hash1)
	seeder.Close()
	sub := leecher.Subscribe(hash1)
	defer sub.Close()
	for {
		leecher.GetPeers(ctx(t), hash1)
		if p := next(t, sub.C).(mediatorclient.Peers); len(p.IDs) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMediatorRestartReannounces(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	fast := socketio.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond, Jitter: 0.5}
	seeder := dial(t, m.url(), mediatorclient.Options{Backoff: fast})
	seeder.Announce(ctx(t), hash1)
	seeder.Announce(ctx(t), hash2)
	seeder.Finish(ctx(t), hash2)
	addr := m.addr
	m.stop()
	m2 := startMediator(t, addr)
	// A fresh peer on the new mediator finds the seeder without the seeder's
	// owner doing anything: the client handshook and re-announced itself.
	leecher := dial(t, m2.url(), mediatorclient.Options{})
	if got := findPeers(t, leecher, hash1); !slices.Equal(got, []string{seeder.PeerID()}) {
		t.Fatalf("after restart FindPeers = %v", got)
	}
	if seeder.Reconnects() < 1 {
		t.Fatal("no reconnect counted")
	}
	sub := leecher.Subscribe(hash2)
	defer sub.Close()
	leecher.GetPeers(ctx(t), hash2)
	if p := next(t, sub.C).(mediatorclient.Peers); len(p.IDs) != 0 {
		t.Fatalf("finished hash re-announced: %v", p.IDs)
	}
	// While the mediator was down, signals failed cleanly, announces were kept.
	if err := seeder.Signal(ctx(t), hash1, leecher.PeerID(), "x"); err != nil {
		t.Fatalf("signal after reconnect: %v", err)
	}
}

func TestCallsWhileDisconnected(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	slow := socketio.Backoff{Min: time.Hour, Max: time.Hour}
	c := dial(t, m.url(), mediatorclient.Options{Backoff: slow})
	m.stop()
	// Wait until the client noticed.
	for !errors.Is(c.GetPeers(ctx(t), hash1), mediatorclient.ErrNotConnected) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.Signal(ctx(t), hash1, c.PeerID(), "x"); !errors.Is(err, mediatorclient.ErrNotConnected) {
		t.Fatalf("Signal while disconnected: %v", err)
	}
	if err := c.Announce(ctx(t), hash1); err != nil {
		t.Fatalf("Announce while disconnected: %v (want it kept for later)", err)
	}
	c.Close() // must not wait for the hour-long backoff
	if err := c.Announce(ctx(t), hash1); !errors.Is(err, mediatorclient.ErrClientClosed) {
		t.Fatalf("Announce after Close: %v", err)
	}
	if _, ok := <-c.Events(); ok {
		t.Fatal("Events not closed")
	}
}

// A client whose id is taken does not give up: it takes a fresh id.
func TestTakenIDReplacedOnDial(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	first := dial(t, m.url(), mediatorclient.Options{})
	second := dial(t, m.url(), mediatorclient.Options{PeerID: first.PeerID()})
	if second.PeerID() == first.PeerID() || !mediation.ValidPeerID(second.PeerID()) {
		t.Fatalf("second client's id %q beside the first's %q", second.PeerID(), first.PeerID())
	}
	// Both work.
	other := dial(t, m.url(), mediatorclient.Options{})
	first.Announce(ctx(t), hash1)
	second.Announce(ctx(t), hash2)
	if got := findPeers(t, other, hash1); !slices.Equal(got, []string{first.PeerID()}) {
		t.Fatalf("hash1: got %v", got)
	}
	if got := findPeers(t, other, hash2); !slices.Equal(got, []string{second.PeerID()}) {
		t.Fatalf("hash2: got %v", got)
	}
}

func TestInputValidation(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	if _, err := mediatorclient.Dial(ctx(t), m.url(), mediatorclient.Options{PeerID: "ABC"}); err == nil {
		t.Fatal("bad peer id accepted")
	}
	c := dial(t, m.url(), mediatorclient.Options{})
	if err := c.Announce(ctx(t), "nothex"); err == nil {
		t.Fatal("bad hash accepted")
	}
	if err := c.Signal(ctx(t), hash1, "x", "d"); err == nil {
		t.Fatal("bad peer id accepted")
	}
	if err := c.Signal(ctx(t), hash1, c.PeerID(), ""); err == nil {
		t.Fatal("empty signal accepted")
	}
}

// A consumer that never reads must not stall the connection: events beyond
// the buffer are dropped and counted, others keep flowing.
func TestSlowConsumerDoesNotBlock(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	busy := dial(t, m.url(), mediatorclient.Options{Buffer: 4})
	sender := dial(t, m.url(), mediatorclient.Options{EventRate: 1000, EventBurst: 100})
	for i := range 20 {
		if err := sender.Signal(ctx(t), hash1, busy.PeerID(), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	sender.Announce(ctx(t), hash2)
	// busy never read Events, yet still gets its own answers.
	if got := findPeers(t, busy, hash2); !slices.Equal(got, []string{sender.PeerID()}) {
		t.Fatalf("got %v", got)
	}
	if busy.Dropped() == 0 {
		t.Fatal("nothing dropped; the test did not fill the buffer")
	}
	if n := len(busy.Events()); n != 4 {
		t.Fatalf("Events holds %d, want its capacity 4", n)
	}
}

// prototypeMediator imitates the prototype's mediator where it differs from
// ours: finish forgets every hash of the peer, get_peers for an unknown hash
// gets no answer at all.
type prototypeMediator struct {
	mu     sync.Mutex
	seeds  map[string]map[string]bool // hash -> peer ids
	finish int
}

func (p *prototypeMediator) handle(ctx context.Context, c *socketio.Conn) {
	var id string
	for {
		ev, err := c.ReadEvent(ctx)
		if err != nil {
			return
		}
		m, err := mediation.Decode(ev.Name, ev.Args)
		if err != nil {
			continue
		}
		p.mu.Lock()
		switch m := m.(type) {
		case mediation.Handshake:
			id = m.ID
			c.Emit("established")
		case mediation.Announce:
			if p.seeds[m.Hash] == nil {
				p.seeds[m.Hash] = map[string]bool{}
			}
			p.seeds[m.Hash][id] = true
		case mediation.Finish:
			p.finish++
			for _, s := range p.seeds {
				delete(s, id)
			}
		case mediation.GetPeers:
			if s, ok := p.seeds[m.Hash]; ok {
				ids := []string{}
				for pid := range s {
					ids = append(ids, pid)
				}
				c.Emit("peers", m.Hash, ids)
			}
		}
		p.mu.Unlock()
	}
}

func (p *prototypeMediator) seeded(hash, id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seeds[hash][id]
}

func TestSurvivesPrototypeQuirks(t *testing.T) {
	pm := &prototypeMediator{seeds: map[string]map[string]bool{}}
	sio := &socketio.Server{Handler: pm.handle, Logger: quiet()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: sio}
	go hs.Serve(ln)
	t.Cleanup(func() {
		sio.Shutdown(context.Background())
		hs.Close()
	})
	url := "http://" + ln.Addr().String()
	seeder := dial(t, url, mediatorclient.Options{})
	leecher := dial(t, url, mediatorclient.Options{})
	for _, h := range []string{hash1, hash2, hash3} {
		seeder.Announce(ctx(t), h)
	}
	if err := seeder.Finish(ctx(t), hash1); err != nil {
		t.Fatal(err)
	}
	// The prototype dropped hash2 and hash3 too; the client puts them back.
	deadline := time.Now().Add(waitTimeout)
	finished := func() bool {
		pm.mu.Lock()
		defer pm.mu.Unlock()
		return pm.finish > 0
	}
	// Once the finish is processed, hash2 and hash3 are seeded again only
	// if they were announced after it.
	for !(finished() && pm.seeded(hash2, seeder.PeerID()) && pm.seeded(hash3, seeder.PeerID())) {
		if time.Now().After(deadline) {
			t.Fatal("other hashes were not re-announced after finish")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pm.seeded(hash1, seeder.PeerID()) {
		t.Fatal("finished hash re-announced")
	}
	// Silence for unknown hashes: FindPeers keeps asking and gives up with ctx.
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := leecher.FindPeers(short, fmt.Sprintf("%040x", 0xdead), 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FindPeers on silence: %v", err)
	}
	if got := findPeers(t, leecher, hash2); !slices.Equal(got, []string{seeder.PeerID()}) {
		t.Fatalf("got %v", got)
	}
}

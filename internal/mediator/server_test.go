package mediator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// waitTimeout is generous: the machine is shared and busy; it only bounds a
// test that would otherwise hang.
const waitTimeout = 20 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startServer serves s on a loopback port until the test ends.
func startServer(t *testing.T, s *Server) (addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, s, ln)
}

func serveOn(t *testing.T, s *Server, ln net.Listener) string {
	t.Helper()
	if s.Logger == nil {
		s.Logger = quietLogger()
	}
	s.Handler() // initialized here, so tests may read its metrics
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// client is a raw Socket.IO connection driving the mediator by hand.
type client struct {
	t *testing.T
	c *socketio.Conn
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	return dialOpt(t, addr, nil)
}

func dialOpt(t *testing.T, addr string, opt *socketio.DialOptions) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := socketio.Dial(ctx, "ws://"+addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c}
}

func (c *client) emit(name string, args ...any) {
	c.t.Helper()
	if err := c.c.Emit(name, args...); err != nil {
		c.t.Fatalf("emit %s: %v", name, err)
	}
}

// next returns the next event, failing the test if there is none in time.
func (c *client) next() (mediation.Message, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ev, err := c.c.ReadEvent(ctx)
	if err != nil {
		return nil, err
	}
	m, err := mediation.Decode(ev.Name, ev.Args)
	if err != nil {
		c.t.Fatalf("mediator sent a malformed event: %v", err)
	}
	return m, nil
}

func (c *client) expect(want mediation.Message) {
	c.t.Helper()
	m, err := c.next()
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", want.Event(), err)
	}
	if fmt.Sprint(m) != fmt.Sprint(want) && !reflect.DeepEqual(m, want) {
		c.t.Fatalf("got %#v, want %#v", m, want)
	}
}

// expectClosed waits until the mediator closes the connection, failing if
// an event arrives instead.
func (c *client) expectClosed() {
	c.t.Helper()
	m, err := c.next()
	if err == nil {
		c.t.Fatalf("got %#v, want the connection closed", m)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		c.t.Fatal("connection still open")
	}
}

func (c *client) handshake(id string) {
	c.t.Helper()
	c.emit("handshake", id, 0)
	c.expectEstablished()
}

// expectEstablished waits for established as a mediator of ours sends it to
// a peer: with its capabilities.
func (c *client) expectEstablished() *mediation.Capabilities {
	c.t.Helper()
	m, err := c.next()
	if err != nil {
		c.t.Fatalf("waiting for established: %v", err)
	}
	e, ok := m.(mediation.Established)
	if !ok || e.Caps == nil || e.Caps.P2PCDN != mediation.ExtensionLevel {
		c.t.Fatalf("got %#v, want established with p2pcdn %d", m, mediation.ExtensionLevel)
	}
	return e.Caps
}

func (c *client) peers(hash string) []string {
	c.t.Helper()
	c.emit("get_peers", hash)
	m, err := c.next()
	if err != nil {
		c.t.Fatalf("waiting for peers: %v", err)
	}
	p, ok := m.(mediation.Peers)
	if !ok || p.Hash != hash {
		c.t.Fatalf("got %#v, want peers for %s", m, hash)
	}
	return p.IDs
}

// sync waits until the mediator has handled everything c sent so far: a
// connection's events are handled in order, and get_peers is always answered.
func (c *client) sync() {
	c.t.Helper()
	c.peers(testID(0xfff))
}

var (
	idA   = testID(0xa)
	idB   = testID(0xb)
	idC   = testID(0xc)
	hash1 = testID(0x1001)
	hash2 = testID(0x1002)
)

func TestPeersMeetAndSignal(t *testing.T) {
	addr := startServer(t, &Server{})
	a, b := dial(t, addr), dial(t, addr)
	a.handshake(idA)
	a.emit("get_peers", hash1) // the observed seeder order: handshake, get_peers, announce
	a.expect(mediation.Peers{Hash: hash1, IDs: []string{}})
	a.emit("announce", hash1)
	a.sync()
	b.handshake(idB)
	if got := b.peers(hash1); len(got) != 1 || got[0] != idA {
		t.Fatalf("downloader got %v, want [A]", got)
	}
	if got := a.peers(hash1); len(got) != 0 {
		t.Fatalf("seeder's own answer %v includes itself", got)
	}
	b.emit("signal", hash1, idA, `{"type":"offer","sdp":"o"}`)
	a.expect(mediation.Signal{Hash: hash1, PeerID: idB, Data: `{"type":"offer","sdp":"o"}`})
	a.emit("signal", hash1, idB, `{"type":"answer","sdp":"a"}`)
	b.expect(mediation.Signal{Hash: hash1, PeerID: idA, Data: `{"type":"answer","sdp":"a"}`})
}

func TestFinishRemovesOneHashOnly(t *testing.T) {
	addr := startServer(t, &Server{})
	a, b := dial(t, addr), dial(t, addr)
	a.handshake(idA)
	a.emit("announce", hash1)
	a.emit("announce", hash2)
	a.emit("finish", hash1)
	b.handshake(idB)
	// Events of one connection are handled in order, so after A's next
	// answer all of the above has happened.
	a.peers(hash1)
	if got := b.peers(hash1); len(got) != 0 {
		t.Fatalf("finished hash still has seeders %v", got)
	}
	if got := b.peers(hash2); len(got) != 1 || got[0] != idA {
		t.Fatalf("other hash lost its seeder: %v", got)
	}
}

func TestDisconnectCleansUp(t *testing.T) {
	s := &Server{}
	addr := startServer(t, s)
	a, b := dial(t, addr), dial(t, addr)
	a.handshake(idA)
	a.emit("announce", hash1)
	a.sync()
	b.handshake(idB)
	if got := b.peers(hash1); len(got) != 1 {
		t.Fatalf("got %v", got)
	}
	a.c.Close()
	waitFor(t, "A forgotten", func() bool { return len(b.peers(hash1)) == 0 })
	waitFor(t, "registry empty", func() bool {
		peers, hashes, seeders := s.reg.stats()
		return peers == 1 && hashes == 0 && seeders == 0
	})
	// A's id is free again.
	a2 := dial(t, addr)
	a2.handshake(idA)
}

// waitFor polls cond until it holds; the bound is only against hangs.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSecondConnectionCannotTakeID(t *testing.T) {
	s := &Server{}
	addr := startServer(t, s)
	a, thief, b := dial(t, addr), dial(t, addr), dial(t, addr)
	a.handshake(idA)
	a.emit("announce", hash1)
	a.sync()
	thief.emit("handshake", idA, 0)
	thief.expectClosed()
	b.handshake(idB)
	if got := b.peers(hash1); len(got) != 1 || got[0] != idA {
		t.Fatalf("got %v", got)
	}
	b.emit("signal", hash1, idA, "offer")
	a.expect(mediation.Signal{Hash: hash1, PeerID: idB, Data: "offer"})
	if n := int(testutil.ToFloat64(s.metrics.closes[1])); n != 1 { // closeIDTaken
		t.Fatalf("id_taken closes = %d, want 1", n)
	}
}

func TestEventsBeforeHandshakeIgnored(t *testing.T) {
	addr := startServer(t, &Server{})
	a, b := dial(t, addr), dial(t, addr)
	a.handshake(idA)
	b.emit("announce", hash1)
	b.emit("get_peers", hash1)
	b.emit("signal", hash1, idA, "offer")
	b.handshake(idB) // established must be the first thing B hears
	if got := a.peers(hash1); len(got) != 0 {
		t.Fatalf("announce before handshake counted: %v", got)
	}
	a.emit("signal", hash1, idB, "ping")
	b.expect(mediation.Signal{Hash: hash1, PeerID: idA, Data: "ping"}) // not A's offer
}

func TestHandshakeTimeout(t *testing.T) {
	addr := startServer(t, &Server{HandshakeTimeout: 100 * time.Millisecond})
	c := dial(t, addr)
	c.expectClosed()
}

func TestMalformedEventsDroppedThenClosed(t *testing.T) {
	s := &Server{MaxStrikes: 10}
	addr := startServer(t, s)
	good, bad := dial(t, addr), dial(t, addr)
	good.handshake(idA)
	good.emit("announce", hash1)
	good.sync()
	bad.handshake(idB)

	bad.emit("get_peers", nil) // crashed the prototype
	bad.emit("get_peers", 42)
	bad.emit("announce", map[string]int{"x": 1})
	bad.emit("get_peers", strings.ToUpper(testID(0xabc)))
	bad.emit("signal", hash1, idA, map[string]string{"type": "offer"})
	bad.emit("signal", hash1, idA+idC, "relay id from a peer")
	bad.emit("handshake", idB, 7)
	bad.emit("whatever", 1, 2, 3) // unknown: dropped, no strike
	// Still served after 7 strikes: the next answer is the real one.
	if got := bad.peers(hash1); len(got) != 1 || got[0] != idA {
		t.Fatalf("got %v", got)
	}
	if got := good.peers(hash1); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
	for range 3 {
		bad.emit("finish", nil)
	}
	bad.expectClosed()
	if got := good.peers(hash1); len(got) != 0 {
		t.Fatalf("good client disturbed: %v", got)
	}
	if n := int(testutil.ToFloat64(s.metrics.closes[0])); n != 1 {
		t.Fatalf("misbehaving closes = %d, want 1", n)
	}
}

func TestFloodIsRateLimited(t *testing.T) {
	// Over its rate, a connection earns a strike a second: three seconds of
	// flooding close it.
	s := &Server{EventRate: 50, EventBurst: 50, MaxStrikes: 3}
	addr := startServer(t, s)
	good := dial(t, addr)
	flood := dial(t, addr)
	good.handshake(idA)
	good.emit("announce", hash1)
	good.sync()
	flood.handshake(idB)
	// Far faster than 50/s, in small batches so the transport's own inbound
	// bound (which would also cut a flood off) stays out of the picture: the
	// mediator drops the excess and then closes.
flood:
	for range 1000 {
		for range 30 {
			if flood.c.Emit("get_peers", hash1) != nil {
				break flood
			}
		}
		select {
		case <-flood.c.Done():
			break flood
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case <-flood.c.Done():
	case <-time.After(waitTimeout):
		t.Fatal("flood was never cut off")
	}
	b := dial(t, addr)
	b.handshake(idC)
	if got := b.peers(hash1); len(got) != 1 || got[0] != idA {
		t.Fatalf("good client disturbed: %v", got)
	}
	if testutil.ToFloat64(s.metrics.drops[1]) == 0 { // dropRateLimited
		t.Fatal("no event was counted as rate limited")
	}
}

func TestOversizedPayloadClosesOnlyThatConnection(t *testing.T) {
	s := &Server{MaxPayload: 64 << 10}
	addr := startServer(t, s)
	good := dial(t, addr)
	good.handshake(idA)
	good.emit("announce", hash1)
	good.sync()
	// Our transport refuses to send more than the server advertises, so
	// speak Engine.IO by hand.
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(waitTimeout))
	for _, step := range []struct{ send, want string }{
		{"", "0{"},
		{"40", "40{"},
		{`42["handshake","` + idB + `",0]`, `42["established",{"p2pcdn":1,"batch":1000}]`},
	} {
		if step.send != "" {
			if err := ws.WriteMessage(websocket.TextMessage, []byte(step.send)); err != nil {
				t.Fatal(err)
			}
		}
		_, msg, err := ws.ReadMessage()
		if err != nil || !strings.HasPrefix(string(msg), step.want) {
			t.Fatalf("engine.io handshake: got %q, %v; want %s...", msg, err, step.want)
		}
	}
	huge := `42["signal","` + hash1 + `","` + idA + `","` + strings.Repeat("x", 200<<10) + `"]`
	ws.WriteMessage(websocket.TextMessage, []byte(huge))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("oversized packet did not close the connection")
			}
			break // closed by the mediator; pings may come before
		}
	}
	if got := good.peers(hash1); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
	// A signal over MaxSignalData but under MaxPayload is dropped, not relayed.
	s2 := &Server{}
	addr2 := startServer(t, s2)
	a, b := dial(t, addr2), dial(t, addr2)
	a.handshake(idA)
	b.handshake(idB)
	b.emit("signal", hash1, idA, strings.Repeat("x", mediation.MaxSignalData+1))
	b.emit("signal", hash1, idA, "small")
	a.expect(mediation.Signal{Hash: hash1, PeerID: idB, Data: "small"})
}

func TestAnswersCappedAndRotated(t *testing.T) {
	addr := startServer(t, &Server{MaxPeersPerAnswer: 5})
	const n = 12
	for i := range n {
		c := dial(t, addr)
		c.handshake(testID(100 + i))
		c.emit("announce", hash1)
		c.sync()
	}
	asker := dial(t, addr)
	asker.handshake(idA)
	seen := map[string]bool{}
	for range 3 {
		ids := asker.peers(hash1)
		if len(ids) != 5 {
			t.Fatalf("answer has %d ids, want 5", len(ids))
		}
		for _, id := range ids {
			seen[id] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("3 answers of 5 reached %d of %d seeders", len(seen), n)
	}
}

func TestHashLimitPerConnection(t *testing.T) {
	addr := startServer(t, &Server{MaxHashesPerConn: 2})
	a, b := dial(t, addr), dial(t, addr)
	a.handshake(idA)
	for i := range 3 {
		a.emit("announce", testID(0x2000+i))
	}
	b.handshake(idB)
	a.peers(hash1)
	if got := b.peers(testID(0x2002)); len(got) != 0 {
		t.Fatalf("third hash accepted: %v", got)
	}
	if got := b.peers(testID(0x2001)); len(got) != 1 {
		t.Fatalf("second hash refused: %v", got)
	}
}

// fakeFederation records relays and offers fixed remote peers.
type fakeFederation struct {
	mu     sync.Mutex
	remote []string
	relays []string
}

func (f *fakeFederation) RemotePeers(hash string, max int) []string {
	return f.remote[:min(max, len(f.remote))]
}

func (f *fakeFederation) RelaySignal(hash, from, to, data string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.relays = append(f.relays, from+">"+to+":"+data)
	return true
}

func TestReplicationAndFederation(t *testing.T) {
	remote := testID(0xee)
	fed := &fakeFederation{remote: []string{remote, idB}}
	s := &Server{Federation: fed}
	addr := startServer(t, s)
	a, b, other := dial(t, addr), dial(t, addr), dial(t, addr)
	a.handshake(idA)
	a.emit("announce", hash1)
	a.sync()
	b.handshake(idB)
	// Local first, then remote; the asker itself is filtered from remote ids.
	if got := b.peers(hash1); fmt.Sprint(got) != fmt.Sprint([]string{idA, remote}) {
		t.Fatalf("got %v", got)
	}
	// Another mediator hands shake with type 1 and gets local peers only.
	other.emit("handshake", idC, 1)
	other.expect(mediation.Established{})
	if got := other.peers(hash1); fmt.Sprint(got) != fmt.Sprint([]string{idA}) {
		t.Fatalf("replication answer %v, want local peers only", got)
	}
	// It relays a signal for our peer A from its peer remote.
	other.emit("signal", hash1, remote+idA, "offer")
	a.expect(mediation.Signal{Hash: hash1, PeerID: remote, Data: "offer"})
	// A answers; remote is not here but its offer came through other, so
	// the answer goes back there with the relay id, sender first.
	a.emit("signal", hash1, remote, "answer")
	other.expect(mediation.Signal{Hash: hash1, PeerID: idA + remote, Data: "answer"})
	// A signal to a remote peer never seen on a replication connection
	// goes to the federation.
	stranger := testID(0xef)
	a.emit("signal", hash1, stranger, "offer2")
	a.sync()
	fed.mu.Lock()
	relays := fmt.Sprint(fed.relays)
	fed.mu.Unlock()
	if want := fmt.Sprint([]string{idA + ">" + stranger + ":offer2"}); relays != want {
		t.Fatalf("relays %s, want %s", relays, want)
	}
	// Once other is gone, its route goes with it: the federation relays.
	other.c.Close()
	waitFor(t, "the replication connection to close", func() bool {
		a.emit("signal", hash1, remote, "answer2")
		a.sync()
		fed.mu.Lock()
		defer fed.mu.Unlock()
		return slices.Contains(fed.relays, idA+">"+remote+":answer2")
	})
	if got := s.LocalHashes(); len(got) != 1 || got[0] != hash1 {
		t.Fatalf("LocalHashes = %v", got)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	s := &Server{}
	addr := startServer(t, s)
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "other_part_total", Help: "A counter of another part."})
	s.Metrics().MustRegister(other)
	other.Add(7)
	a := dial(t, addr)
	a.handshake(idA)
	a.emit("announce", hash1)
	a.emit("get_peers", nil)
	a.peers(hash1)

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	code, body := get("/metrics")
	for _, want := range []string{
		"p2pcdn_mediator_connections 1\n",
		"p2pcdn_mediator_peers 1\n",
		"p2pcdn_mediator_hashes 1\n",
		`p2pcdn_mediator_events_received_total{event="get_peers"} 2` + "\n",
		`p2pcdn_mediator_events_dropped_total{reason="malformed"} 1` + "\n",
		"p2pcdn_mediator_peers_answers_total 1\n",
		"p2pcdn_mediator_get_peers_seconds_count 1\n",
		"go_gc_heap_live_bytes ",
		"go_memory_stacks_bytes ",
		"go_goroutines ",
		"process_open_fds ",
		"other_part_total 7\n", // registered by another part of the process
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q:\n%s", code, want, body)
		}
	}
	if code, _ := get("/index.html"); code != 404 {
		t.Fatalf("unknown path without Fallback: %d, want 404", code)
	}

	s2 := &Server{Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "fallback "+r.URL.Path)
	})}
	addr = startServer(t, s2)
	resp, err := http.Get("http://" + addr + "/p2pcdn.js")
	if err != nil {
		t.Fatal(err)
	}
	body2, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body2) != "fallback /p2pcdn.js" {
		t.Fatalf("fallback got %q", body2)
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Logger: quietLogger()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	c := dial(t, ln.Addr().String())
	c.handshake(idA)
	cancel()
	c.expectClosed()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after cancel, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

// Events arriving as JSON the transport accepts but the contract does not:
// decoded by mediation, so only a quick end-to-end check of a few shapes.
func TestRawArgumentShapes(t *testing.T) {
	addr := startServer(t, &Server{})
	a := dial(t, addr)
	a.emit("handshake", json.RawMessage(`"`+idA+`"`), json.RawMessage(`0`))
	a.expectEstablished()
	a.emit("get_peers", json.RawMessage(`[]`))
	a.emit("get_peers")
	if got := a.peers(hash1); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
}

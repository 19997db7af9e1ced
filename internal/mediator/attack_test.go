package mediator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/p2pcdn/p2pcdn/internal/clientip"
	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// Attacks on the mediator (issue 11), each bounded in count and time, on
// loopback only. Distinct loopback addresses (127.0.0.x) stand for distinct
// clients. Each test asserts the bound the attack used to break and that a
// well-behaved client keeps working during it.

// dialFrom connects a Socket.IO client leaving from local address ip.
func dialFrom(t *testing.T, addr, ip string) *client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return dialOpt(t, addr, &socketio.DialOptions{NetDialContext: d.DialContext})
}

func httpFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: waitTimeout}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(ents)
}

// A well-behaved peer from its own address announces, is found and signals.
func checkWellBehaved(t *testing.T, addr, ip string, hash string) {
	t.Helper()
	seeder, getter := dialFrom(t, addr, ip), dialFrom(t, addr, ip)
	sid, gid := testID(0x5eed), testID(0x6e7)
	seeder.handshake(sid)
	seeder.emit("announce", hash)
	seeder.sync()
	getter.handshake(gid)
	if got := getter.peers(hash); len(got) != 1 || got[0] != sid {
		t.Fatalf("well-behaved get_peers answered %v, want [%s]", got, sid)
	}
	getter.emit("signal", hash, sid, `{"type":"offer","sdp":"x"}`)
	seeder.expect(mediation.Signal{Hash: hash, PeerID: gid, Data: `{"type":"offer","sdp":"x"}`})
	seeder.c.Close()
	getter.c.Close()
}

// "Clients sending at a legal average rate were closed as rate-limited under
// CPU load": events that arrive bunched after a stall are within the burst,
// and a burst over it costs dropped events, not the connection.
func TestAttackBurstyClientIsNotClosed(t *testing.T) {
	s := &Server{EventRate: 50} // burst: ten seconds' worth
	addr := startServer(t, s)
	a := dialOpt(t, addr, &socketio.DialOptions{MaxPending: 2000})
	a.handshake(idA)
	// 400 events at once, as a stalled network delivers them: all answered.
	for range 400 {
		a.emit("get_peers", hash1)
	}
	for i := range 400 {
		m, err := a.next()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if _, ok := m.(mediation.Peers); !ok {
			t.Fatalf("answer %d: %#v", i, m)
		}
	}
	// Far over the burst at once: the excess is dropped, one strike.
	for range 600 {
		a.emit("announce", hash2)
	}
	b := dial(t, addr)
	b.handshake(idB)
	waitFor(t, "the excess counted", func() bool { return testutil.ToFloat64(s.metrics.drops[1]) > 0 })
	if got := b.peers(hash2); len(got) != 1 || got[0] != idA {
		t.Fatalf("got %v", got)
	}
	a.emit("signal", hash2, idB, "still here") // once the bucket refills
	waitFor(t, "the connection to keep working", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		ev, err := b.c.ReadEvent(ctx)
		if err == nil && ev.Name == "signal" {
			return true
		}
		a.emit("signal", hash2, idB, "still here")
		return false
	})
	if a.c.Err() != nil {
		t.Fatalf("bursty client closed: %v", a.c.Err())
	}
}

// Attack 3: a WebSocket held open without ever handing shake, before or
// after connecting the namespace, is closed HandshakeTimeout after it opened.
func TestAttackNoHandshakeFromTransportOpen(t *testing.T) {
	s := &Server{HandshakeTimeout: 300 * time.Millisecond, PingInterval: 50 * time.Millisecond, PingTimeout: time.Second}
	addr := startServer(t, s)
	for _, connect := range []bool{false, true} {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if connect {
			ws.WriteMessage(websocket.TextMessage, []byte("40"))
		}
		ws.SetReadDeadline(time.Now().Add(waitTimeout))
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				if os.IsTimeout(err) {
					t.Fatalf("connect=%v: a websocket that never hands shake is still open", connect)
				}
				break
			}
			if string(msg) == "2" {
				ws.WriteMessage(websocket.TextMessage, []byte("3")) // alive, nothing more
			}
		}
	}
	checkWellBehaved(t, addr, "127.0.0.1", hash1)
}

// Attack 3: one address opening connections by the hundred used to drive
// the mediator out of descriptors (20,000 idle WebSockets: /healthz and every
// get failed). Now it holds at most MaxConnsPerClient of them.
func TestAttackDescriptorExhaustion(t *testing.T) {
	const limit, attempts = 20, 150
	s := &Server{MaxConnsPerClient: limit, MaxSessionsPerClient: limit}
	addr := startServer(t, s)
	http.DefaultClient.CloseIdleConnections()
	before := openFDs(t)
	g0 := runtime.NumGoroutine()
	var held []net.Conn
	for range attempts {
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}).Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// Idle WebSockets too, until refused.
	var socks []*websocket.Conn
	for range attempts {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", nil)
		if err != nil {
			break
		}
		socks = append(socks, ws)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
		for _, ws := range socks {
			ws.Close()
		}
	}()
	// Our side holds one descriptor per connection it still has open; the
	// server's share is the rest. Refused connections close at once.
	waitFor(t, "refused connections closed", func() bool {
		return testutil.ToFloat64(s.metrics.limited[0]) >= attempts-limit
	})
	serverFDs := openFDs(t) - before - len(held) - len(socks)
	t.Logf("%d connection attempts from one address: the server holds %d descriptors, %d goroutines more", attempts+len(socks)+1, serverFDs, runtime.NumGoroutine()-g0-len(socks))
	if serverFDs > limit+10 {
		t.Fatalf("the server holds %d descriptors for one address, limit %d", serverFDs, limit)
	}
	if len(socks) > limit {
		t.Fatalf("%d websockets accepted from one address, limit %d", len(socks), limit)
	}
	// Each held connection costs the server a goroutine or two (net/http's,
	// a websocket's reader), and the test's own websockets one each.
	if g := runtime.NumGoroutine() - g0 - len(socks); g > 2*limit+10 {
		t.Fatalf("%d goroutines more for one address's connections, limit %d", g, limit)
	}
	// Another address is served: health, and a whole get_peers/signal.
	resp, err := httpFrom("127.0.0.2").Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok\n" {
		t.Fatalf("/healthz from another address: %q", body)
	}
	checkWellBehaved(t, addr, "127.0.0.2", hash1)
}

// Attack 5: connections announcing hashes by the thousand (600,000 hashes:
// 585 MB) now stop at MaxHashesPerClient for their address.
func TestAttackMassAnnounce(t *testing.T) {
	const perClient, perConn = 5000, 3000
	s := &Server{MaxHashesPerClient: perClient, MaxHashesPerConn: perConn}
	addr := startServer(t, s)
	var attackers []*client
	next := 0
	for i := range 10 {
		c := dialFrom(t, addr, "127.0.0.1")
		c.handshake(testID(0xa000 + i))
		for range 6 {
			batch := make([]string, 1000)
			for j := range batch {
				batch[j] = testID(0x100000 + next)
				next++
			}
			c.emit("announce_many", batch)
		}
		attackers = append(attackers, c)
	}
	for _, c := range attackers {
		c.sync()
	}
	_, hashes, seeders := s.reg.stats()
	t.Logf("%d hashes announced from one address: %d kept", next, seeders)
	if seeders > perClient || hashes > perClient {
		t.Fatalf("%d seeder entries, %d hashes kept for one address, limit %d", seeders, hashes, perClient)
	}
	if testutil.ToFloat64(s.metrics.limited[2]) == 0 {
		t.Fatal("the per-address hash limit was not counted")
	}
	checkWellBehaved(t, addr, "127.0.0.2", hash1)
}

// Attack 7: anyone can hand shake as a REPLICATION link. Such a link used to
// relay signals "from" any id, peers connected here included: forged offers
// tore down real sessions. A link speaks only for ids behind it.
func TestAttackSpoofedRelaySignals(t *testing.T) {
	s := &Server{}
	addr := startServer(t, s)
	seeder, downloader := dial(t, addr), dial(t, addr)
	seeder.handshake(idA)
	seeder.emit("announce", hash1)
	seeder.sync()
	downloader.handshake(idB)

	link, other := dial(t, addr), dial(t, addr)
	link.emit("handshake", testID(0x111), 1)
	link.expect(mediation.Established{})
	other.emit("handshake", testID(0x222), 1)
	other.expect(mediation.Established{})

	// A forged offer "from" the local downloader is refused.
	link.emit("signal", hash1, idB+idA, `{"type":"offer","sdp":"forged"}`)
	// A remote peer's offer goes through and binds that id to this link...
	remote := testID(0xe1)
	link.emit("signal", hash1, remote+idA, `{"type":"offer","sdp":"remote"}`)
	seeder.expect(mediation.Signal{Hash: hash1, PeerID: remote, Data: `{"type":"offer","sdp":"remote"}`})
	// ...so another link cannot speak for it meanwhile.
	other.emit("signal", hash1, remote+idA, `{"type":"offer","sdp":"hijack"}`)
	other.sync()
	// The seeder's answer goes back through the link that holds the id.
	seeder.emit("signal", hash1, remote, `{"type":"answer","sdp":"a"}`)
	link.expect(mediation.Signal{Hash: hash1, PeerID: idA + remote, Data: `{"type":"answer","sdp":"a"}`})
	// The real downloader's signal still arrives, and is the next thing the
	// seeder hears: neither forgery reached it.
	downloader.emit("signal", hash1, idA, `{"type":"offer","sdp":"real"}`)
	seeder.expect(mediation.Signal{Hash: hash1, PeerID: idB, Data: `{"type":"offer","sdp":"real"}`})
	if n := testutil.ToFloat64(s.metrics.drops[6]); n != 2 { // dropSpoofedSender
		t.Fatalf("%v spoofed senders counted, want 2", n)
	}
	// Links of the federation deliver through DeliverSignal, which refuses
	// local senders too.
	if s.DeliverSignal(hash1, idB, idA, `{"type":"offer","sdp":"forged"}`) {
		t.Fatal("DeliverSignal accepted a local sender from a remote mediator")
	}
	if !s.DeliverSignal(hash1, testID(0xe2), idA, "ok") {
		t.Fatal("DeliverSignal refused a remote sender")
	}
	seeder.expect(mediation.Signal{Hash: hash1, PeerID: testID(0xe2), Data: "ok"})
}

// poller speaks Engine.IO long-polling by hand: a peer whose reading the
// test controls.
type poller struct {
	t   *testing.T
	url string
	hc  *http.Client
}

func newPoller(t *testing.T, addr string) *poller {
	t.Helper()
	p := &poller{t: t, url: "http://" + addr + "/socket.io/?EIO=4&transport=polling", hc: &http.Client{Timeout: waitTimeout}}
	body := p.do(http.MethodGet, p.url, "")
	var open struct{ Sid string }
	if !strings.HasPrefix(body, "0") || json.Unmarshal([]byte(body[1:]), &open) != nil {
		t.Fatalf("polling handshake: %q", body)
	}
	p.url += "&sid=" + open.Sid
	p.post("40")
	return p
}

func (p *poller) do(method, url, body string) string {
	p.t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := p.hc.Do(req)
	if err != nil {
		p.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("%s: %s %q", method, resp.Status, b)
	}
	return string(b)
}

func (p *poller) post(body string) { p.do(http.MethodPost, p.url, body) }

// poll returns the packets of one long-poll, answering pings.
func (p *poller) poll() []string {
	p.t.Helper()
	pkts := strings.Split(p.do(http.MethodGet, p.url, ""), "\x1e")
	for _, pkt := range pkts {
		if pkt == "2" {
			p.post("3")
		}
		if pkt == "1" {
			p.t.Fatal("the server closed the session")
		}
	}
	return pkts
}

// Attack 9: ten connections sending 30 KiB signals as fast as they can to
// one peer used to make the mediator close that peer as a slow consumer.
// Now what exceeds the peer's budget is dropped, the peer keeps its
// connection, and a well-behaved sender still reaches it.
func TestAttackSignalFlood(t *testing.T) {
	s := &Server{SignalRate: 256 << 10}
	addr := startServer(t, s)
	victim := newPoller(t, addr)
	victimID := testID(0x71c)
	victim.post(fmt.Sprintf(`42["handshake","%s",0]`, victimID))
	for !strings.Contains(strings.Join(victim.poll(), ""), "established") {
	}
	data := strings.Repeat("x", 30<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	done := make(chan int, 10)
	for i := range 10 {
		c := dial(t, addr)
		c.handshake(testID(0xbad0 + i))
		go func() {
			sent := 0
			for ctx.Err() == nil && sent < 300 {
				if c.c.Emit("signal", hash1, victimID, data) != nil {
					break
				}
				sent++
				time.Sleep(10 * time.Millisecond) // ~100 signals a second each
			}
			done <- sent
		}()
	}
	// The victim reads slowly meanwhile, and a well-behaved peer signals it.
	good := dial(t, addr)
	goodID := testID(0x600d)
	good.handshake(goodID)
	got, polls := 0, 0
	for ctx.Err() == nil || got == 0 {
		if polls%5 == 0 {
			good.emit("signal", hash1, victimID, `{"type":"offer","sdp":"good"}`)
		}
		for _, pkt := range victim.poll() {
			if strings.Contains(pkt, goodID) {
				got++
			}
		}
		polls++
		time.Sleep(100 * time.Millisecond)
		if polls > int(waitTimeout/(100*time.Millisecond)) {
			t.Fatal("the well-behaved sender never reached the flooded peer")
		}
	}
	sent := 0
	for range 10 {
		sent += <-done
	}
	delivered := testutil.ToFloat64(s.metrics.signalsRouted)
	dropped := testutil.ToFloat64(s.metrics.signalDrops[0]) + testutil.ToFloat64(s.metrics.signalDrops[2])
	t.Logf("flood: %d signals of 30 KiB sent, %v delivered, %v dropped; the good sender got through %d times", sent, delivered, dropped, got)
	if dropped == 0 {
		t.Fatal("nothing dropped")
	}
	// Delivered bytes stay within the budget: its burst plus its rate over
	// the flood's few seconds (generously 10 s here).
	if bytes := delivered * float64(len(data)); bytes > float64(4*s.SignalRate+10*s.SignalRate) {
		t.Fatalf("%v bytes of signals delivered, more than the budget allows", bytes)
	}
	// The victim is still connected: it hears a signal sent now.
	good.emit("signal", hash1, victimID, "after")
	for found := false; !found; {
		for _, pkt := range victim.poll() {
			found = found || strings.Contains(pkt, `"after"`)
		}
	}
}

// Behind a reverse proxy every connection comes from the proxy: per-client
// limits need the address it forwards, believed only from trusted proxies.
func TestTrustedProxyClientAddress(t *testing.T) {
	proxies, err := clientip.ParseProxies([]string{"127.0.0.1/32"})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{TrustedProxies: proxies, MaxConnsPerClient: 2, MaxSessionsPerClient: 2}
	addr := startServer(t, s)
	open := func(from, forwarded string) int {
		t.Helper()
		d := websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext}
		h := http.Header{}
		if forwarded != "" {
			h.Set("X-Forwarded-For", forwarded)
		}
		ws, resp, err := d.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket", h)
		if err != nil {
			if resp == nil {
				return 0 // refused before HTTP: the connection limit
			}
			return resp.StatusCode
		}
		t.Cleanup(func() { ws.Close() })
		return http.StatusSwitchingProtocols
	}
	// The proxy carries many clients: its connections are not limited, each
	// client's sessions are.
	for _, client := range []string{"192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.2", "192.0.2.3"} {
		if code := open("127.0.0.1", client); code != http.StatusSwitchingProtocols {
			t.Fatalf("client %s through the proxy: %d", client, code)
		}
	}
	if code := open("127.0.0.1", "192.0.2.1"); code != http.StatusTooManyRequests {
		t.Fatalf("third session of one client through the proxy: %d, want 429", code)
	}
	// Anyone else's X-Forwarded-For is not believed: 127.0.0.2 is limited
	// as itself, however many addresses it claims.
	for i, claim := range []string{"198.51.100.1", "198.51.100.2"} {
		if code := open("127.0.0.2", claim); code != http.StatusSwitchingProtocols {
			t.Fatalf("session %d from an untrusted address: %d", i, code)
		}
	}
	if code := open("127.0.0.2", "198.51.100.3"); code == http.StatusSwitchingProtocols {
		t.Fatal("an untrusted address escaped its limit with X-Forwarded-For")
	}
	// The well-behaved peers of the proxied clients are served.
	c := dialOpt(t, addr, &socketio.DialOptions{Header: http.Header{"X-Forwarded-For": {"192.0.2.9"}}})
	c.handshake(idA)
	c.sync()
}

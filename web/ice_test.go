package web

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// extendJS makes the page's mediator link behave as if the mediator spoke
// docs/extensions.md: a bare `established` frame gets the argument
// window.established, get_ice_servers is answered with window.iceAnswer(),
// and batch events are sent on as the single events the Go mediator of
// today takes. Every event the page sends is kept in window.events. A
// mediator that already sends an argument with established is left alone.
const extendJS = `window.events = []; {
	const L = p2pcdn._internal.MediatorLink.prototype, on = L._onMessage, send = L.send;
	L._onMessage = function (s, m) {
		if (m === '2["established"]' && window.established) m = '2' + JSON.stringify(["established", window.established]);
		return on.call(this, s, m);
	};
	L.send = function (name, ...a) {
		events.push([name, ...a]);
		if (name === "get_ice_servers" && window.iceAnswer) { setTimeout(() => on.call(this, this.session, '2' + JSON.stringify(["ice_servers", iceAnswer()]))); return true; }
		if (name.endsWith("_many") && window.established) { for (const h of a[0]) send.call(this, name.slice(0, -5), h); return true; }
		return send.call(this, name, ...a);
	};
} true`

// startTURN runs a STUN/TURN server (pion/turn) on 127.0.0.1 that takes
// TURN REST API credentials under secret, as the mediator's does.
func startTURN(t *testing.T, secret string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := turn.NewServer(turn.ServerConfig{
		Realm:       "p2pcdn",
		AuthHandler: turn.LongTermTURNRESTAuthHandler(secret, nil),
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return pc.LocalAddr().String()
}

// iceServers is the established argument's ice_servers for a TURN server
// at addr, with fresh credentials for user valid for d.
func iceServers(t *testing.T, addr, secret, user string, d time.Duration) []map[string]any {
	t.Helper()
	u, p, err := turn.GenerateLongTermTURNRESTCredentials(secret, user, d)
	if err != nil {
		t.Fatal(err)
	}
	return []map[string]any{
		{"urls": []string{"stun:" + addr}},
		{"urls": []string{"turn:" + addr + "?transport=udp"}, "username": u, "credential": p},
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMediatorICEServers: a page uses the STUN and TURN servers its
// mediator names in established, in addition to its own iceServers, drops
// malformed entries, and asks for fresh credentials before they expire.
// The TURN server checks the credentials, so a relay candidate in the
// page's offer shows they were used.
func TestMediatorICEServers(t *testing.T) {
	const secret = "s3cret"
	m := startMediator(t)
	addr := startTURN(t, secret)
	b := chromium.New(t)
	a, c := b.Tab(), b.NewTab()
	navigate(t, a, m.URL()+"/test.html")
	navigate(t, c, m.URL()+"/test.html")

	servers := iceServers(t, addr, secret, "page", time.Hour)
	bad := []map[string]any{{"urls": "http://127.0.0.1:1"}, {"urls": []string{"turn:127.0.0.1:1"}}, {"urls": 7}}
	est := map[string]any{"p2pcdn": 1, "ice_servers": append(append([]map[string]any{}, bad...), servers...), "ice_expires": time.Now().Add(3 * time.Second).Unix()}
	fresh := iceServers(t, addr, secret, "fresh", time.Hour)
	own := map[string]any{"urls": "stun:127.0.0.1:9"}

	hash := eval[string](t, a, `(async () => { `+genJS+`
		window.node = await p2pcdn.connect({iceServers: []});
		return (await node.seed(new Blob([gen(400000)]), {name: "i.bin"})).full_hash; })()`)
	got := eval[map[string]any](t, c, fmt.Sprintf(`(async () => { %s; %s
		window.configs = []; { const PC = window.RTCPeerConnection;
			window.RTCPeerConnection = function (cfg) { configs.push(cfg); return new PC(cfg); }; window.RTCPeerConnection.prototype = PC.prototype; }
		window.established = %s; window.iceAnswer = () => ({ice_servers: %s, ice_expires: %d});
		window.node = await p2pcdn.connect({iceServers: [%s]}); %s
		const ice = node.mediatorIce, blob = await node.fetch(%q, {timeout: 60000});
		return {size: blob.size, caps: node.capabilities, ice, configs}; })()`,
		extendJS, genJS, mustJSON(t, est), mustJSON(t, fresh), time.Now().Add(time.Hour).Unix(), mustJSON(t, own), recordSignalsJS, hash))
	if got["size"] != 400000.0 {
		t.Fatalf("fetched %v bytes, want 400000", got["size"])
	}
	if caps, _ := got["caps"].(map[string]any); caps["p2pcdn"] != 1.0 {
		t.Errorf("capabilities = %v, want p2pcdn 1", got["caps"])
	}
	if want := mustJSON(t, servers); mustJSON(t, got["ice"]) != want {
		t.Errorf("mediator ICE servers kept:\n %s\nwant the well-formed ones:\n %s", mustJSON(t, got["ice"]), want)
	}
	cfgs := got["configs"].([]any)
	if len(cfgs) == 0 {
		t.Fatal("no peer connection was made")
	}
	cfg := mustJSON(t, cfgs[0])
	for _, want := range []string{"stun:127.0.0.1:9", "stun:" + addr, "turn:" + addr} {
		if !strings.Contains(cfg, want) {
			t.Errorf("peer connection configuration lacks %s: %s", want, cfg)
		}
	}
	offer, _ := sdpOf(t, eval[[]map[string]any](t, c, `sent`), "offer")
	if !strings.Contains(offer, " typ relay ") {
		t.Errorf("the page's offer has no relay candidate: the TURN credentials were not used:\n%s", offer)
	}

	// The credentials expire 3 s after established: the page asks for fresh
	// ones before then and uses them.
	waitFor(t, c, "fresh ICE servers", `node.mediatorIce.some((s) => s.username && s.username.endsWith(":fresh"))`)
	if n := eval[int](t, c, `events.filter((e) => e[0] === "get_ice_servers").length`); n != 1 {
		t.Errorf("get_ice_servers sent %d times, want once", n)
	}
}

// TestFetchGivesUp: fetch rejects, with an error that says what happened,
// when no peer has the file (after its timeout), when it is aborted, and —
// without waiting for the timeout — when peers were found but ICE failed
// with all of them.
func TestFetchGivesUp(t *testing.T) {
	m := startMediator(t)
	b := chromium.New(t)
	a, c := b.Tab(), b.NewTab()
	navigate(t, a, m.URL()+"/test.html")
	navigate(t, c, m.URL()+"/test.html")

	res := eval[map[string]any](t, c, `(async () => {
		window.node = await p2pcdn.connect({iceServers: []});
		const out = {};
		try { await node.fetch("cd".repeat(20), {timeout: 1500}); out.none = "resolved"; } catch (e) { out.none = e.code + " " + e.message; }
		const ac = new AbortController(); setTimeout(() => ac.abort(), 300);
		try { await node.fetch("ef".repeat(20), {signal: ac.signal}); out.aborted = "resolved"; } catch (e) { out.aborted = e.code + " " + e.message; }
		out.wanted = node.transfers.get("cd".repeat(20)).wanted;
		return out; })()`)
	if s, _ := res["none"].(string); !strings.HasPrefix(s, "NO_PEERS p2pcdn: no peer has "+strings.Repeat("cd", 20)+": none found within 2 s") {
		t.Errorf("fetch of a hash nobody has: %q", s)
	}
	if s, _ := res["aborted"].(string); !strings.HasPrefix(s, "ABORTED p2pcdn: fetch aborted") {
		t.Errorf("aborted fetch: %q", s)
	}
	if res["wanted"] != false {
		t.Errorf("the transfer is still looking for peers after its only fetch gave up")
	}

	// Every candidate the fetcher sends or receives points at a closed port
	// on loopback, so ICE fails both ways.
	dead := closedUDPPort(t)
	hash := eval[string](t, a, `(async () => { `+genJS+`
		window.node = await p2pcdn.connect({iceServers: []});
		return (await node.seed(new Blob([gen(300000)]), {name: "f.bin"})).full_hash; })()`)
	breakICE := `{
		const dead = (s) => s.replace(/^(a=)?(candidate:\S+ \d+ \S+ \d+) \S+ \d+ typ/gm, "$1$2 127.0.0.1 ` + dead + ` typ");
		const fix = (d) => { const o = JSON.parse(d); if (o.sdp) o.sdp = dead(o.sdp); if (o.candidate) o.candidate.candidate = dead(o.candidate.candidate); return JSON.stringify(o); };
		const send = node.link.send.bind(node.link), on = node._onEvent.bind(node);
		node.link.send = (name, ...a) => { if (name === "signal") a[2] = fix(a[2]); return send(name, ...a); };
		node._onEvent = (name, a) => { if (name === "signal") a = [a[0], a[1], fix(a[2])]; return on(name, a); };
	}`
	got := eval[map[string]any](t, c, fmt.Sprintf(`(async () => {
		const t0 = performance.now(); %s
		try { await node.fetch(%q, {timeout: 120000}); return {err: "resolved"}; }
		catch (e) { return {err: e.message, code: e.code, peers: e.peers, secs: (performance.now() - t0) / 1000}; } })()`, breakICE, hash))
	t.Logf("gave up after %.1f s: %v", got["secs"], got["err"])
	if got["code"] != "ICE_FAILED" || got["peers"] != 1.0 {
		t.Errorf("fetch from an unreachable peer: code %v, peers %v; want ICE_FAILED, 1", got["code"], got["peers"])
	}
	msg, _ := got["err"].(string)
	for _, want := range []string{"found 1 peer with " + hash, "ICE failed", "STUN offered: no, TURN offered: no", "--turn"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
}

// TestBatchEvents: toward a mediator that takes batches, a page names many
// hashes per event (at most the mediator's batch), and still fetches.
func TestBatchEvents(t *testing.T) {
	m := startMediator(t)
	b := chromium.New(t)
	a, c := b.Tab(), b.NewTab()
	navigate(t, a, m.URL()+"/test.html")
	navigate(t, c, m.URL()+"/test.html")
	const n, batch = 12, 5
	seeded := eval[[]any](t, a, fmt.Sprintf(`(async () => { %s; %s
		window.established = {p2pcdn: 1, batch: %d};
		window.node = await p2pcdn.connect({iceServers: []});
		const hs = [];
		for (const blob of assets(%d, 2)) hs.push((await node.seed(blob, {name: "b.bin"})).full_hash);
		await new Promise((r) => setTimeout(r, 100));
		return hs; })()`, extendJS, assetsJS, batch, n))
	hashes := jsonList(seeded)
	checkBatches := func(who string, events []any, name string, want int) {
		t.Helper()
		covered := 0
		for _, e := range events {
			ev := e.([]any)
			if ev[0] == name {
				t.Errorf("%s sent a single %s toward a batching mediator", who, name)
			}
			if ev[0] == name+"_many" {
				l := len(ev[1].([]any))
				if l > batch || l == 0 {
					t.Errorf("%s sent %s with %d hashes; the mediator takes 1 to %d", who, ev[0], l, batch)
				}
				covered += l
			}
		}
		if covered < want {
			t.Errorf("%s named %d hashes in %s_many events, want at least %d", who, covered, name, want)
		}
	}
	checkBatches("seeder", eval[[]any](t, a, `events`), "announce", n)

	got := eval[map[string]any](t, c, fmt.Sprintf(`(async () => { %s
		window.established = {p2pcdn: 1, batch: %d};
		window.node = await p2pcdn.connect({iceServers: []});
		const blobs = await Promise.all(%s.map((h) => node.fetch(h)));
		return {n: blobs.length, events}; })()`, extendJS, batch, hashes))
	if got["n"] != float64(n) {
		t.Fatalf("fetched %v files, want %d", got["n"], n)
	}
	checkBatches("fetcher", got["events"].([]any), "get_peers", n)
	eval[bool](t, a, `node.close(); true`)
	checkBatches("closing seeder", eval[[]any](t, a, `events`), "finish", n)
}

// closedUDPPort is a UDP port on 127.0.0.1 that nothing listens on.
func closedUDPPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
	pc.Close()
	return port
}

package web

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// eventsJS keeps every event the page's mediator link sends in
// window.events.
const eventsJS = `window.events = []; { const L = p2pcdn._internal.MediatorLink.prototype, send = L.send;
	L.send = function (name, ...a) { events.push([name, ...a]); return send.call(this, name, ...a); }; } true`

// deadHostJS rewrites the host candidates in every signal the page sends
// or receives to a closed port on loopback, so that only relayed paths
// work.
const deadHostJS = `{
	const dead = (s) => s.replace(/^(a=)?(candidate:\S+ \d+ \S+ \d+) \S+ \d+ typ host/gm, "$1$2 127.0.0.1 %s typ host");
	const fix = (d) => { const o = JSON.parse(d); if (o.sdp) o.sdp = dead(o.sdp); if (o.candidate) o.candidate.candidate = dead(o.candidate.candidate); return JSON.stringify(o); };
	const send = node.link.send.bind(node.link), on = node._onEvent.bind(node);
	node.link.send = (name, ...a) => { if (name === "signal") a[2] = fix(a[2]); return send(name, ...a); };
	node._onEvent = (name, a) => { if (name === "signal") a = [a[0], a[1], fix(a[2])]; return on(name, a); };
}`

// TestMediatorICEServers: a page uses the STUN and TURN servers its mediator
// (ours, with internal/iceserver) names in established, in addition to its
// own iceServers, and asks for fresh credentials before they expire. With
// every host candidate pointing nowhere, the file can only come through the
// mediator's TURN relay, which checks the credentials it handed out.
func TestMediatorICEServers(t *testing.T) {
	m := startMediatorWith(t, mediatorOpts{iceTTL: 4 * time.Second})
	b := chromium.New(t)
	a, c := b.Tab(), b.NewTab()
	navigate(t, a, m.URL()+"/test.html")
	navigate(t, c, m.URL()+"/test.html")

	hash := eval[string](t, a, `(async () => { `+genJS+`
		window.node = await p2pcdn.connect({iceServers: []});
		return (await node.seed(new Blob([gen(400000)]), {name: "i.bin"})).full_hash; })()`)
	// The page's own server, beside the mediator's: a name that resolves to
	// nothing here.
	own := "stun:own-stun.invalid:3478"
	got := eval[map[string]any](t, c, fmt.Sprintf(`(async () => {
		window.configs = []; window.pcs = []; { const PC = window.RTCPeerConnection;
			window.RTCPeerConnection = function (cfg) { configs.push(cfg); const pc = new PC(cfg); pcs.push(pc); return pc; }; window.RTCPeerConnection.prototype = PC.prototype; }
		window.events = []; { const L = p2pcdn._internal.MediatorLink.prototype, send = L.send;
			L.send = function (name, ...a) { events.push(name); return send.call(this, name, ...a); }; }
		window.node = await p2pcdn.connect({iceServers: [{urls: %q}]}); %s
		configs.length = 0; pcs.length = 0; // the ones before were the library trying the mediator's servers
		const ice = node.mediatorIce, blob = await node.fetch(%q, {timeout: 60000});
		let pair = null;
		(await pcs[0].getStats()).forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pair = s.selectedCandidatePairId; });
		const st = await pcs[0].getStats(), p = st.get(pair), kinds = p ? [st.get(p.localCandidateId).candidateType, st.get(p.remoteCandidateId).candidateType] : [];
		return {size: blob.size, caps: node.capabilities, ice, configs, id: node.peerId, kinds}; })()`, own, fmt.Sprintf(deadHostJS, closedUDPPort(t)), hash))
	t.Logf("the mediator offered %s; the selected pair is %v", mustJSON(t, got["ice"]), got["kinds"])
	if got["size"] != 400000.0 {
		t.Fatalf("fetched %v bytes, want 400000", got["size"])
	}
	if caps, _ := got["caps"].(map[string]any); caps["p2pcdn"] != 1.0 {
		t.Errorf("capabilities = %v, want p2pcdn 1", got["caps"])
	}
	ice := mustJSON(t, got["ice"])
	id, _ := got["id"].(string)
	for _, want := range []string{`"stun:127.0.0.1:`, `"turn:127.0.0.1:`, `:` + id + `"`} {
		if !strings.Contains(ice, want) {
			t.Errorf("the page's mediator ICE servers lack %s: %s", want, ice)
		}
	}
	cfgs := got["configs"].([]any)
	if len(cfgs) == 0 {
		t.Fatal("no peer connection was made")
	}
	cfg := mustJSON(t, cfgs[0])
	for _, want := range []string{own, `"stun:127.0.0.1:`, "turn:127.0.0.1:"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("peer connection configuration lacks %s: %s", want, cfg)
		}
	}
	if k := fmt.Sprint(got["kinds"]); !strings.Contains(k, "relay") {
		t.Errorf("the selected candidate pair is %s; with dead host candidates it must be relayed", k)
	}

	// The credentials live 4 s: the page asks for fresh ones before they
	// expire, and uses what the mediator answers.
	first := eval[string](t, c, `node.mediatorIce.find((s) => s.username).username`)
	waitFor(t, c, "fresh TURN credentials", fmt.Sprintf(`node.mediatorIce.some((s) => s.username && s.username !== %q)`, first))
	if n := eval[int](t, c, `events.filter((e) => e === "get_ice_servers").length`); n < 1 {
		t.Errorf("get_ice_servers was never sent")
	}
}

// TestCleanICE: the library keeps only ICE servers a browser accepts from
// what a mediator sends, since one bad entry would make every peer
// connection throw.
func TestCleanICE(t *testing.T) {
	base := startMediator(t).URL()
	b := chromium.New(t)
	navigate(t, b.Tab(), base+"/test.html")
	got := eval[map[string]any](t, b.Tab(), `(() => {
		const clean = p2pcdn._internal.cleanIce([
			{urls: "stun:a.example:3478"},                                        // kept, urls made a list
			{urls: ["turn:a.example:3478?transport=udp", "http://x"], username: "u", credential: "p"}, // http dropped
			{urls: ["turn:a.example:3478"]},                                      // TURN without credentials: dropped
			{urls: "stun:b.example", username: 5, credential: "p"},               // bad username: kept without it
			{urls: ["stun:d.example", "turn:d.example?transport=tcp"], username: "v", credential: "w"}, // TURN after STUN keeps its credentials
			{urls: 7}, null, "stun:c.example", {urls: ["stun:" + "x".repeat(600)]}, {urls: ["stun:has space"]},
			{urls: ["stun:a.example:99999", "turn:a.example:1?transport=sctp", "stun:a?x"]}, // the browser's rules: port, transport, query
			{urls: ["turn:a.example:1"], username: "", credential: ""},            // empty credentials
		]);
		let ok = true;
		try { new RTCPeerConnection({iceServers: clean}).close(); } catch (e) { ok = e.message; }
		// Plainly well-formed servers (as our mediator sends) pass without a throwaway connection.
		const plain = [{urls: ["stun:[::1]:3478", "stun:m.example"]}, {urls: ["turn:10.0.0.1?transport=tcp", "turns:m.example:443?transport=tcp"], username: "1:" + "u".repeat(254), credential: "p".repeat(256)}];
		let made = 0; const PC = window.RTCPeerConnection;
		window.RTCPeerConnection = function (...a) { made++; return new PC(...a); };
		const plainKept = p2pcdn._internal.cleanIce(plain);
		window.RTCPeerConnection = PC;
		let plainOK = true;
		try { new RTCPeerConnection({iceServers: plainKept}).close(); } catch (e) { plainOK = e.message; }
		return {clean, ok, made, plainOK, plainKept: JSON.stringify(plainKept) === JSON.stringify(plain), notList: p2pcdn._internal.cleanIce({urls: "stun:x"}).length, many: p2pcdn._internal.cleanIce(Array(40).fill({urls: "stun:x"})).length};
	})()`)
	want := `[{"urls":["stun:a.example:3478"]},{"credential":"p","urls":["turn:a.example:3478?transport=udp"],"username":"u"},{"urls":["stun:b.example"]},` +
		`{"credential":"w","urls":["stun:d.example","turn:d.example?transport=tcp"],"username":"v"}]`
	if s := mustJSON(t, got["clean"]); s != want {
		t.Errorf("cleanIce kept\n %s\nwant\n %s", s, want)
	}
	if got["ok"] != true || got["plainOK"] != true {
		t.Errorf("RTCPeerConnection refused what cleanIce kept: %v, %v", got["ok"], got["plainOK"])
	}
	if got["made"] != 0.0 || got["plainKept"] != true {
		t.Errorf("plainly well-formed servers: %v throwaway connections (want 0), all kept: %v", got["made"], got["plainKept"])
	}
	if got["notList"] != 0.0 || got["many"] != 8.0 {
		t.Errorf("cleanIce of a non-list kept %v entries (want 0); of 40 kept %v (want the first 8)", got["notList"], got["many"])
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

// TestBatchEvents: toward our mediator, which takes batches (here of at
// most 5 hashes), a page names many hashes per event, within the limit, and
// still fetches; toward one that does not advertise batches it sends single
// events.
func TestBatchEvents(t *testing.T) {
	const n, batch = 12, 5
	m := startMediatorWith(t, mediatorOpts{batch: batch})
	b := chromium.New(t)
	a, c := b.Tab(), b.NewTab()
	navigate(t, a, m.URL()+"/test.html")
	navigate(t, c, m.URL()+"/test.html")
	seeded := eval[[]any](t, a, fmt.Sprintf(`(async () => { %s; %s
		window.node = await p2pcdn.connect({iceServers: []});
		const hs = [];
		for (const blob of assets(%d, 2)) hs.push((await node.seed(blob, {name: "b.bin"})).full_hash);
		await new Promise((r) => setTimeout(r, 100));
		return hs; })()`, eventsJS, assetsJS, n))
	hashes := jsonList(seeded)
	if limit := eval[int](t, a, `node.capabilities.batch`); limit != batch {
		t.Fatalf("the mediator advertised batch %d, want %d", limit, batch)
	}
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
		window.node = await p2pcdn.connect({iceServers: []});
		const blobs = await Promise.all(%s.map((h) => node.fetch(h)));
		return {n: blobs.length, events}; })()`, eventsJS, hashes))
	if got["n"] != float64(n) {
		t.Fatalf("fetched %v files, want %d", got["n"], n)
	}
	checkBatches("fetcher", got["events"].([]any), "get_peers", n)
	eval[bool](t, a, `node.close(); true`)
	checkBatches("closing seeder", eval[[]any](t, a, `events`), "finish", n)

	// A mediator without batches (ours with them turned off) gets one event per hash.
	m2 := startMediatorWith(t, mediatorOpts{batch: -1})
	navigate(t, a, m2.URL()+"/test.html")
	single := eval[map[string]any](t, a, fmt.Sprintf(`(async () => { %s; %s
		window.node = await p2pcdn.connect({iceServers: []});
		for (const blob of assets(3, 4)) await node.seed(blob, {name: "s.bin"});
		await new Promise((r) => setTimeout(r, 100));
		return {caps: node.capabilities, names: events.map((e) => e[0])}; })()`, eventsJS, assetsJS))
	names := fmt.Sprint(single["names"])
	if strings.Contains(names, "_many") || strings.Count(names, "announce") != 3 {
		t.Errorf("toward a mediator without batches (capabilities %v) the page sent %s, want 3 single announces", single["caps"], names)
	}
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

package web

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
)

// recordSignalsJS wraps the page node's mediator link so that every signal it
// sends is kept, parsed, in window.sent.
const recordSignalsJS = `window.sent = []; { const send = node.link.send.bind(node.link);
	node.link.send = (name, ...a) => { if (name === "signal") sent.push(JSON.parse(a[2])); return send(name, ...a); }; }`

// trickleFetch seeds size bytes in tab a and fetches them in tab c, whose node
// is connected with the given options. It returns the signals each page sent
// and whether the bytes arrived intact.
func trickleFetch(t *testing.T, a, c context.Context, opts string, size int) (seeder, fetcher []map[string]any) {
	t.Helper()
	hash := eval[string](t, a, `(async () => { `+genJS+`
		window.node = await p2pcdn.connect({iceServers: []}); `+recordSignalsJS+`
		return (await node.seed(new Blob([gen(`+fmt.Sprint(size)+`)]), {name: "t.bin"})).full_hash; })()`)
	same := eval[bool](t, c, `(async () => { `+genJS+`
		window.node = await p2pcdn.connect(`+opts+`); `+recordSignalsJS+`
		const got = new Uint8Array(await (await node.fetch(`+fmt.Sprintf("%q", hash)+`)).arrayBuffer()), want = gen(`+fmt.Sprint(size)+`);
		return got.length === want.length && got.every((x, i) => x === want[i]); })()`)
	if !same {
		t.Fatalf("fetched bytes differ from the seeded ones")
	}
	return eval[[]map[string]any](t, a, `sent`), eval[[]map[string]any](t, c, `sent`)
}

func countTypes(sigs []map[string]any) map[string]int {
	n := map[string]int{}
	for _, s := range sigs {
		n[fmt.Sprint(s["type"])]++
	}
	return n
}

// sdpOf returns the SDP of the one signal of the given type.
func sdpOf(t *testing.T, sigs []map[string]any, typ string) (string, map[string]any) {
	t.Helper()
	for _, s := range sigs {
		if s["type"] == typ {
			sdp, _ := s["sdp"].(string)
			return sdp, s
		}
	}
	t.Fatalf("no %s signal among %v", typ, countTypes(sigs))
	return "", nil
}

// TestTrickleBetweenPages: a page's offer is marked and carries its host
// candidates; the answering page answers without candidates and trickles
// them as signals.
func TestTrickleBetweenPages(t *testing.T) {
	base := startMediator(t).URL()
	b := chromium.New(t)
	a, c := b.Tab(), b.NewTab()
	navigate(t, a, base+"/test.html")
	navigate(t, c, base+"/test.html")
	seeder, fetcher := trickleFetch(t, a, c, `{iceServers: []}`, 1000000)
	t.Logf("seeder sent %v, fetcher sent %v", countTypes(seeder), countTypes(fetcher))

	offer, o := sdpOf(t, fetcher, "offer")
	if o["trickle"] != true || !strings.Contains(offer, "a=candidate:") {
		t.Errorf("offer is not complete and marked: trickle=%v, candidates=%v", o["trickle"], strings.Contains(offer, "a=candidate:"))
	}
	if answer, _ := sdpOf(t, seeder, "answer"); strings.Contains(answer, "a=candidate:") {
		t.Errorf("answer to a marked offer carried candidates instead of trickling them:\n%s", answer)
	}
	n := 0
	for _, s := range seeder {
		if s["type"] != "candidate" {
			continue
		}
		n++
		cand, _ := s["candidate"].(map[string]any)
		if line, _ := cand["candidate"].(string); !strings.HasPrefix(line, "candidate:") {
			t.Errorf("candidate signal %v has no candidate line", s)
		}
	}
	if n == 0 {
		t.Errorf("seeder sent no candidate signals: %v", countTypes(seeder))
	}
	// The offer carries the host candidates; later ones (here only
	// Chromium's active TCP ones) may follow as signals, none repeating
	// one of the offer's.
	if !regexp.MustCompile(`a=candidate:\S+ 1 udp \d+ \S+ \d+ typ host`).MatchString(offer) {
		t.Errorf("offer has no UDP host candidate:\n%s", offer)
	}
	for _, s := range fetcher {
		if s["type"] != "candidate" {
			continue
		}
		cand, _ := s["candidate"].(map[string]any)
		if line, _ := cand["candidate"].(string); line == "" || strings.Contains(offer, "a="+line+"\r\n") {
			t.Errorf("offering page trickled %q, which its offer already carries", line)
		}
	}
}

// TestCompleteSDPTowardUnmarkedOffer: an offer without the mark (as the
// prototype's simple-peer sends, here a page with trickle: false) gets a
// complete answer and no candidate signals.
func TestCompleteSDPTowardUnmarkedOffer(t *testing.T) {
	base := startMediator(t).URL()
	b := chromium.New(t)
	a, c := b.Tab(), b.NewTab()
	navigate(t, a, base+"/test.html")
	navigate(t, c, base+"/test.html")
	seeder, fetcher := trickleFetch(t, a, c, `{iceServers: [], trickle: false}`, 300000)

	if _, o := sdpOf(t, fetcher, "offer"); o["trickle"] != nil {
		t.Errorf("offer with trickle: false still carries the mark: %v", o["trickle"])
	}
	if answer, _ := sdpOf(t, seeder, "answer"); !strings.Contains(answer, "a=candidate:") {
		t.Errorf("answer to an unmarked offer has no candidates:\n%s", answer)
	}
	if k := countTypes(seeder)["candidate"]; k != 0 {
		t.Errorf("seeder trickled %d candidates toward an unmarked offer", k)
	}
}

// TestGoPeersAcceptMarkedOffer: native peers parse the mark away as an
// unknown field, so a page's offer stays an ordinary complete offer to them.
func TestGoPeersAcceptMarkedOffer(t *testing.T) {
	sig, err := rtc.ParseSignal(`{"type":"offer","sdp":"v=0\r\n","trickle":true}`)
	if err != nil || sig.Type != rtc.SignalOffer || sig.SDP != "v=0\r\n" {
		t.Fatalf("ParseSignal(marked offer) = %+v, %v", sig, err)
	}
}

// BenchmarkTrickleFetch fetches 1 MB between two tabs by a fresh hash each
// time, once by a node whose offers are marked (the seeder trickles) and, in
// the same run, once by a node with trickle: false (complete answers).
func BenchmarkTrickleFetch(b *testing.B) { benchTrickle(b, `[]`) }

func benchTrickle(b *testing.B, ice string) {
	const size = 1000000
	m := startMediator(b).URL()
	br := chromium.New(b)
	a, c := br.Tab(), br.NewTab()
	navigate(b, a, m+"/test.html")
	navigate(b, c, m+"/test.html")
	eval[bool](b, a, `p2pcdn.connect({iceServers: `+ice+`}).then((n) => { window.node = n; return true; })`)
	eval[bool](b, c, `Promise.all([p2pcdn.connect({iceServers: `+ice+`}), p2pcdn.connect({iceServers: `+ice+`, trickle: false})])
		.then(([x, y]) => { window.tn = x; window.cn = y; return true; })`)
	seed := func(i int) string {
		return eval[string](b, a, fmt.Sprintf(`(async () => { const u = new Uint8Array(%d); for (let j = 0; j < u.length; j += 997) u[j] = (j + %d) & 255;
			return (await node.seed(new Blob([u]), {name: "b.bin"})).full_hash; })()`, size, i))
	}
	fetch := func(n, hash string) float64 {
		return eval[float64](b, c, fmt.Sprintf(`(async () => { const t0 = performance.now(); await %s.fetch(%q); return (performance.now() - t0) / 1000; })()`, n, hash))
	}
	var trickle, complete float64
	for i := 0; b.Loop(); i++ {
		h1, h2 := seed(2*i), seed(2*i+1)
		trickle += fetch("tn", h1)
		complete += fetch("cn", h2)
	}
	n := float64(b.N)
	b.ReportMetric(trickle/n*1000, "trickle-ms/fetch")
	b.ReportMetric(complete/n*1000, "complete-ms/fetch")
	b.ReportMetric(trickle/complete, "trickle/complete")
}

// TestCandidatesAfterUnmarkedOffer: an unmarked offer without candidates,
// followed by its candidates as signals (simple-peer with trickle on), gets
// them applied to the connection it set up, a single-file one.
func TestCandidatesAfterUnmarkedOffer(t *testing.T) {
	base := startMediator(t).URL()
	b := chromium.New(t)
	navigate(t, b.Tab(), base+"/test.html")
	got := eval[map[string]any](t, b.Tab(), `(async () => { `+genJS+`
		const node = await p2pcdn.connect({iceServers: []});
		const hash = (await node.seed(new Blob([gen(1000)]), {name: "c.bin"})).full_hash, from = "ab".repeat(20);
		node.link.send = () => true; // the answer goes nowhere
		const pc = new RTCPeerConnection({iceServers: []}), cands = [];
		pc.onicecandidate = (e) => e.candidate && cands.push(e.candidate.toJSON());
		pc.createDataChannel("x");
		await pc.setLocalDescription();
		await new Promise((r) => setTimeout(r, 300));
		const bare = pc.localDescription.sdp.split("\r\n").filter((l) => !l.startsWith("a=candidate:")).join("\r\n");
		node._onEvent("signal", [hash, from, JSON.stringify({type: "offer", sdp: bare})]);
		for (const c of cands) node._onEvent("signal", [hash, from, JSON.stringify({candidate: c})]);
		const c = node.single.get(from + hash);
		await new Promise((r) => setTimeout(r, 300));
		const remote = [];
		if (c && c.pc) (await c.pc.getStats()).forEach((s) => { if (s.type === "remote-candidate") remote.push(s.candidateType); });
		pc.close(); node.close();
		return {single: !!c, shared: node.conns.size, sent: cands.length, remote}; })()`)
	if got["single"] != true {
		t.Fatalf("the unmarked offer set up no single-file connection: %v", got)
	}
	if r, _ := got["remote"].([]any); len(r) == 0 || got["sent"] == 0.0 {
		t.Errorf("the candidates that followed the offer were not applied: %v", got)
	}
}

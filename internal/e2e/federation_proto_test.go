package e2e

// One federation with the prototype's own mediators (issue 14): our
// `p2pcdn mediator` beside stand-ins for the prototype's mediator
// (testdata/protomediator/mediator.js: socket.io 4.5, socket.io-client 4.5
// and bittorrent-dht 10, driven as PROTOCOL.md sections 4-6 describe), in
// one DHT keyed the prototype's way (40 ASCII bytes) and ours (20 bytes).
// Every process talks over loopback only.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
	"github.com/p2pcdn/p2pcdn/internal/testenv"
)

// standIn is a running testdata/protomediator/mediator.js.
type standIn struct {
	t      testing.TB
	name   string
	addr   string // Socket.IO host:port
	dht    string // DHT host:port
	mu     sync.Mutex
	events []standInEvent
	stderr strings.Builder
	done   chan struct{}
}

type standInEvent struct {
	Ev    string `json:"ev"`
	Hash  string `json:"hash"`
	Host  string `json:"host"`
	Port  int    `json:"port"`
	DHT   int    `json:"dht"`
	Nodes int    `json:"nodes"`
	Addr  string `json:"addr"`
	Trans string `json:"transport"`
	Err   string `json:"err"`
}

// startStandIn starts a prototype mediator stand-in whose DHT node joins
// through bootstrap ("" for none), and waits until it listens.
func startStandIn(t testing.TB, name, bootstrap string) *standIn {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "protomediator")
	testenv.NPMInstall(t, dir)
	args := []string{"mediator.js", "0", "0"}
	if bootstrap != "" {
		args = append(args, bootstrap)
	}
	cmd := exec.Command(testenv.Node(t), args...)
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe() // the stand-in exits when it closes
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &standIn{t: t, name: name, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{mu: &s.mu, w: &s.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e standInEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				s.mu.Lock()
				s.events = append(s.events, e)
				s.mu.Unlock()
			}
		}
		cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			s.mu.Lock()
			t.Logf("%s events: %+v\nstderr:\n%s", name, s.events, s.stderr.String())
			s.mu.Unlock()
		}
	})
	e := s.wait("listening", func(e standInEvent) bool { return e.Ev == "listening" })
	s.addr = fmt.Sprintf("127.0.0.1:%d", e.Port)
	s.dht = fmt.Sprintf("127.0.0.1:%d", e.DHT)
	return s
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// wait waits for an event accepted by ok, from the first one on.
func (s *standIn) wait(what string, ok func(standInEvent) bool) standInEvent {
	s.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		s.mu.Lock()
		for _, e := range s.events {
			if ok(e) {
				s.mu.Unlock()
				return e
			}
		}
		s.mu.Unlock()
		select {
		case <-s.done:
			s.t.Fatalf("%s exited while waiting for %s; stderr:\n%s", s.name, what, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: no %s within %s", s.name, what, startTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAnnounced waits until the stand-in's DHT announce of hash reached at
// least one node.
func (s *standIn) waitAnnounced(hash string) {
	s.t.Helper()
	s.wait("announce of "+hash, func(e standInEvent) bool { return e.Ev == "announced" && e.Hash == hash && e.Nodes > 0 })
}

// asMediator lets the helpers that run seed and get use the stand-in.
func (s *standIn) asMediator() *mediator { return &mediator{addr: s.addr} }

// waitProtoAnnounced waits until m stored its announcement of hash under
// both keys on at least one DHT node each.
func (m *fedMediator) waitProtoAnnounced(hash string) {
	m.T().Helper()
	m.WaitOutput(regexp.MustCompile(`msg=announced .*hash=`+hash+` relay=false nodes=[1-9]\d* proto_nodes=[1-9]`), startTimeout)
}

// getVia runs `p2pcdn get` of hash through the mediator at m and checks the
// bytes against src.
func getVia(t *testing.T, via string, m *mediator, hash, src string) *summary {
	t.Helper()
	out := t.TempDir()
	code, sum, p := runGet(t, m, out, "--timeout", "60s", hash)
	if code != 0 {
		t.Fatalf("get through %s exited %d; stderr:\n%s", via, code, p.Stderr())
	}
	sameFile(t, filepath.Join(out, filepath.Base(src)), src)
	if sum.FullHash != hash || sum.Peers != 1 {
		t.Fatalf("get through %s: summary %+v, want hash %s from its one seeder", via, *sum, hash)
	}
	return sum
}

// TestFederationWithPrototypeMediators: prototype stand-in A, our mediator
// B joining the DHT through A, stand-in C joining through B; a seeder on
// each (`p2pcdn seed`, which speaks the prototype's contract to a stand-in).
// Every file is fetched through each of the two other mediators:
//   - A -> B and C -> B: our mediator finds the prototypes' 40-byte
//     announcements and relays over REPLICATION links it opens to them;
//   - B -> A and B -> C: prototype mediators find ours under the 40-byte key
//     and link to it with socket.io-client's defaults (polling, upgrade);
//   - A -> C: the mixed chain prototype <- ours <- prototype: C knows only
//     B, whose DHT node holds A's announcement and answers C with it;
//   - C -> A: the other way, through B's DHT node too.
//
// Then our page (web/p2pcdn.js in Chromium) fetches through each mediator a
// file seeded at another.
func TestFederationWithPrototypeMediators(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := map[string]string{}
	for i, name := range []string{"a", "b", "c"} {
		files[name] = filepath.Join(dir, "on-"+name+".bin")
		writeRandom(t, files[name], 400000+int64(i)*100003, uint64(81+i))
	}

	a := startStandIn(t, "prototype mediator A", "")
	b := startFedMediator(t, "mediator B", a.dht)
	b.waitBootstrapped(1)
	c := startStandIn(t, "prototype mediator C", b.dht)

	sa := startSeeder(t, a.asMediator(), nil, files["a"])
	sb := startSeeder(t, b.mediator, nil, files["b"])
	sc := startSeeder(t, c.asMediator(), nil, files["c"])
	hashA, hashB, hashC := sa.infos[0].FullHash, sb.infos[0].FullHash, sc.infos[0].FullHash
	a.waitAnnounced(hashA)
	b.waitProtoAnnounced(hashB)
	c.waitAnnounced(hashC)

	via := map[string]*mediator{"A": a.asMediator(), "B": b.mediator, "C": c.asMediator()}
	for _, g := range []struct{ seeder, through, hash string }{
		{"a", "B", hashA}, {"c", "B", hashC},
		{"b", "A", hashB}, {"b", "C", hashB},
		{"a", "C", hashA}, {"c", "A", hashC},
	} {
		t.Run(fmt.Sprintf("seeder on %s, get through %s", strings.ToUpper(g.seeder), g.through), func(t *testing.T) {
			sum := getVia(t, g.through, via[g.through], g.hash, files[g.seeder])
			t.Logf("took %d ms", *sum.ElapsedMS)
		})
	}
	// Our page (web/p2pcdn.js in Chromium, loaded from B) through each
	// mediator, for a file seeded at another.
	t.Run("our page", func(t *testing.T) {
		tab := chromium.New(t).Tab()
		ctx, cancel := context.WithTimeout(tab, startTimeout)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Navigate("http://"+b.addr+"/")); err != nil {
			t.Fatal(err)
		}
		for _, g := range []struct{ seeder, through, hash string }{
			{"b", "A", hashB}, {"a", "B", hashA}, {"a", "C", hashA},
		} {
			t.Run(fmt.Sprintf("seeder on %s, page through %s", strings.ToUpper(g.seeder), g.through), func(t *testing.T) {
				got := pageEval[string](t, tab, fmt.Sprintf(`(async () => {
					const node = await p2pcdn.connect({mediator: %q, iceServers: []});
					const blob = await node.fetch(%q);
					const sum = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
					return Array.from(new Uint8Array(sum), (b) => b.toString(16).padStart(2, "0")).join("");
				})()`, via[g.through].url(), g.hash))
				if want := fileSHA256(t, files[g.seeder]); got != want {
					t.Fatalf("the page fetched content with SHA-256 %s, want %s", got, want)
				}
			})
		}
	})

	// A and C found B under the 40-byte key and linked to it as the
	// prototype does: long-polling first, then the upgrade to WebSocket.
	for _, s := range []*standIn{a, c} {
		if e := s.wait("a link to B", func(e standInEvent) bool { return e.Ev == "link" && e.Addr == b.addr }); e.Trans != "polling" {
			t.Errorf("%s linked to B over %q, want polling first", s.name, e.Trans)
		}
		s.wait("the link to B upgraded", func(e standInEvent) bool {
			return e.Ev == "upgraded" && e.Addr == b.addr && e.Trans == "websocket"
		})
	}
}

// BenchmarkGetMixedFederation times whole `p2pcdn get` processes of a 1 MB
// file across two federated mediators, in the same run, interleaved:
//   - ours: seeder on our mediator A, get through our mediator B (the
//     baseline);
//   - mixed: seeder on a prototype stand-in, get through our mediator
//     beside it (40-byte lookup, our REPLICATION link to the prototype);
//   - reverse: seeder on that mediator of ours, get through the prototype
//     stand-in (its lookup, its socket.io-client link to ours).
//
// Every mediator has looked the hash up once before the clock starts (the
// links are warm, as in steady state); the first, cold get of each is
// reported too. It reports medians and their ratios to ours.
func BenchmarkGetMixedFederation(b *testing.B) {
	dir := b.TempDir()
	src, src2 := filepath.Join(dir, "bench.bin"), filepath.Join(dir, "bench2.bin")
	writeRandom(b, src, 1000000, 91)
	writeRandom(b, src2, 1000000, 92)

	oa := startFedMediator(b, "mediator A (ours)")
	ob := startFedMediator(b, "mediator B (ours)", oa.dht)
	ob.waitBootstrapped(1)
	pa := startStandIn(b, "prototype mediator P", "")
	pb := startFedMediator(b, "mediator B (beside P)", pa.dht)
	pb.waitBootstrapped(1)

	hash := startSeeder(b, oa.mediator, nil, src).infos[0].FullHash
	if h := startSeeder(b, pa.asMediator(), nil, src).infos[0].FullHash; h != hash {
		b.Fatal("the same file hashed differently")
	}
	hash2 := startSeeder(b, pb.mediator, nil, src2).infos[0].FullHash
	oa.waitAnnounced(hash)
	pa.waitAnnounced(hash)
	pb.waitProtoAnnounced(hash2)

	timedGet := func(m *mediator, h string) time.Duration {
		out := b.TempDir()
		begin := time.Now()
		p := startGet(b, m, out, "--timeout", "60s", h)
		code := p.Wait(runTimeout)
		d := time.Since(begin)
		if code != 0 {
			b.Fatalf("get exited %d; stderr:\n%s", code, p.Stderr())
		}
		return d
	}
	kinds := []struct {
		name string
		m    *mediator
		hash string
	}{{"ours", ob.mediator, hash}, {"mixed", pb.mediator, hash}, {"reverse", pa.asMediator(), hash2}}
	times := make([][]time.Duration, len(kinds))
	cold := make([]time.Duration, len(kinds))
	for i, k := range kinds {
		cold[i] = timedGet(k.m, k.hash)
	}
	b.ResetTimer()
	for i := range b.N {
		// Rotate which goes first, so none always pays for the previous.
		for j := range kinds {
			k := (i + j) % len(kinds)
			times[k] = append(times[k], timedGet(kinds[k].m, kinds[k].hash))
		}
	}
	b.StopTimer()
	base := median(times[0])
	for i, k := range kinds {
		m := median(times[i])
		b.ReportMetric(float64(m.Milliseconds()), k.name+"-ms")
		b.ReportMetric(float64(cold[i].Milliseconds()), k.name+"-cold-ms")
		if i > 0 {
			b.ReportMetric(float64(m)/float64(base), k.name+"/ours")
		}
	}
}

// pageEval evaluates expr in the tab, awaiting a returned promise.
func pageEval[T any](t testing.TB, tab context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, runTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %.100q: %v", expr, err)
	}
	return v
}

func fileSHA256(t testing.TB, path string) string { return testenv.FileSHA256(t, path) }

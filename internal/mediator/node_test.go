package mediator

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/testenv"
)

// nodePeer is testdata/mediator/peer.js: npm socket.io-client 4.x, the
// library the prototype's browser peers use, driven line by line.
type nodePeer struct {
	t       *testing.T
	name    string
	stdin   io.WriteCloser
	reports chan nodeReport
	// upgraded is set by waitFor when it passes an upgrade to WebSocket.
	upgraded bool
}

type nodeReport struct {
	Ev        string            `json:"ev"`
	Transport string            `json:"transport"`
	Name      string            `json:"name"`
	Args      []json.RawMessage `json:"args"`
	Reason    string            `json:"reason"`
	Message   string            `json:"message"`
}

func startNodePeer(t *testing.T, name, url, mode string) *nodePeer {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "mediator")
	testenv.NPMInstall(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, testenv.Node(t), "peer.js", url, mode)
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
	p := &nodePeer{t: t, name: name, stdin: stdin, reports: make(chan nodeReport, 100)}
	// The reader ends when the process exits and closes stdout.
	go func() {
		defer close(p.reports)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r nodeReport
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				p.reports <- r
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close() // peer.js exits when stdin closes
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	return p
}

func (p *nodePeer) emit(args ...any) {
	p.t.Helper()
	line, err := json.Marshal(args)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.stdin.Write(append(line, '\n')); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// waitFor returns the first report matching ok, failing on disconnects.
func (p *nodePeer) waitFor(what string, ok func(nodeReport) bool) nodeReport {
	p.t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case r, open := <-p.reports:
			if !open {
				p.t.Fatalf("%s exited while waiting for %s", p.name, what)
			}
			if r.Ev == "disconnect" || r.Ev == "connect_error" {
				p.t.Fatalf("%s: %s %s%s while waiting for %s", p.name, r.Ev, r.Reason, r.Message, what)
			}
			if r.Ev == "upgrade" && r.Transport == "websocket" {
				p.upgraded = true
			}
			if ok(r) {
				return r
			}
		case <-timeout:
			p.t.Fatalf("%s: no %s", p.name, what)
		}
	}
}

// event waits for the event name and returns its arguments as JSON text.
func (p *nodePeer) event(name string) string {
	p.t.Helper()
	r := p.waitFor(name, func(r nodeReport) bool { return r.Ev == "event" && r.Name == name })
	js, _ := json.Marshal(r.Args)
	return string(js)
}

func TestNodeSocketIOClientPeers(t *testing.T) {
	s := &Server{}
	addr := startServer(t, s)
	url := "http://" + addr

	// A: socket.io-client defaults, like the prototype's browser peer:
	// long-polling first, then the upgrade to WebSocket. B: websocket only.
	a := startNodePeer(t, "A (polling+upgrade)", url, "")
	b := startNodePeer(t, "B (websocket)", url, "websocket")
	if r := a.waitFor("open", func(r nodeReport) bool { return r.Ev == "open" }); r.Transport != "polling" {
		t.Fatalf("A opened over %s, want polling first", r.Transport)
	}
	if r := b.waitFor("open", func(r nodeReport) bool { return r.Ev == "open" }); r.Transport != "websocket" {
		t.Fatalf("B opened over %s", r.Transport)
	}

	// The seeder's observed order: handshake, get_peers, announce.
	a.emit("handshake", idA, 0)
	// The prototype's peers ignore established's argument, our capabilities.
	if got := a.event("established"); got != `[{"p2pcdn":1,"batch":1000}]` {
		t.Fatalf("established args %s", got)
	}
	a.emit("get_peers", hash1)
	if got, want := a.event("peers"), fmt.Sprintf(`[%q,[]]`, hash1); got != want {
		t.Fatalf("A peers = %s, want %s", got, want)
	}
	a.emit("announce", hash1)
	a.emit("get_peers", nil) // crashed the prototype's mediator
	a.emit("get_peers", hash2)
	if got, want := a.event("peers"), fmt.Sprintf(`[%q,[]]`, hash2); got != want {
		t.Fatalf("A peers = %s, want %s", got, want)
	}

	b.emit("handshake", idB, 0)
	b.event("established")
	b.emit("get_peers", hash1)
	if got, want := b.event("peers"), fmt.Sprintf(`[%q,[%q]]`, hash1, idA); got != want {
		t.Fatalf("B peers = %s, want %s", got, want)
	}
	offer := `{"type":"offer","sdp":"v=0\r\n"}`
	b.emit("signal", hash1, idA, offer)
	if got, want := a.event("signal"), mustJSON(t, []string{hash1, idB, offer}); got != want {
		t.Fatalf("A signal = %s, want %s", got, want)
	}
	answer := `{"type":"answer","sdp":"v=0\r\n"}`
	a.emit("signal", hash1, idB, answer)
	if got, want := b.event("signal"), mustJSON(t, []string{hash1, idA, answer}); got != want {
		t.Fatalf("B signal = %s, want %s", got, want)
	}
	// A left polling for WebSocket on the way and is still served.
	if !a.upgraded {
		a.waitFor("upgrade", func(r nodeReport) bool { return r.Ev == "upgrade" && r.Transport == "websocket" })
	}
	a.emit("get_peers", hash1)
	a.event("peers")

	// A Go client and a socket.io-client peer find each other.
	goPeer, err := mediatorclient.Dial(context.Background(), url, mediatorclient.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer goPeer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ids, err := goPeer.FindPeers(ctx, hash1, 200*time.Millisecond)
	if err != nil || !slices.Equal(ids, []string{idA}) {
		t.Fatalf("Go client FindPeers = %v, %v", ids, err)
	}
	if err := goPeer.Signal(ctx, hash1, idA, offer); err != nil {
		t.Fatal(err)
	}
	if got, want := a.event("signal"), mustJSON(t, []string{hash1, goPeer.PeerID(), offer}); got != want {
		t.Fatalf("A signal = %s, want %s", got, want)
	}
	a.emit("signal", hash1, goPeer.PeerID(), answer)
	select {
	case ev := <-goPeer.Events():
		if want := (mediatorclient.Signal{Hash: hash1, From: idA, Data: answer}); ev != want {
			t.Fatalf("Go client got %#v, want %#v", ev, want)
		}
	case <-ctx.Done():
		t.Fatal("Go client got no answer")
	}
}

func mustJSON(t *testing.T, v any) string {
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

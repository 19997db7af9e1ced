package federation

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/testenv"
)

// protoMediator is testdata/federation/replicate.js: npm socket.io-client
// over long-polling with b64=1, standing in for a prototype mediator that
// connects to ours to relay for its peers.
type protoMediator struct {
	enc     *json.Encoder
	reports chan protoReport
}

type protoReport struct {
	Ev        string            `json:"ev"`
	Transport string            `json:"transport"`
	Query     map[string]any    `json:"query"`
	Name      string            `json:"name"`
	Args      []json.RawMessage `json:"args"`
	Reason    string            `json:"reason"`
	Message   string            `json:"message"`
}

func startProtoMediator(t *testing.T, url string) *protoMediator {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "federation")
	testenv.NPMInstall(t, dir)
	cmd := exec.Command(testenv.Node(t), "replicate.js", url)
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
	p := &protoMediator{enc: json.NewEncoder(stdin), reports: make(chan protoReport, 100)}
	// The reader ends when the process exits and closes stdout.
	go func() {
		defer close(p.reports)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r protoReport
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				p.reports <- r
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close() // replicate.js exits when stdin closes
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return p
}

func (p *protoMediator) emit(t *testing.T, args ...any) {
	t.Helper()
	if err := p.enc.Encode(args); err != nil {
		t.Fatalf("writing to replicate.js: %v", err)
	}
}

// next returns the next report accepted by ok, failing on disconnects.
func (p *protoMediator) next(t *testing.T, ctx context.Context, what string, ok func(protoReport) bool) protoReport {
	t.Helper()
	for {
		select {
		case <-ctx.Done():
			t.Fatalf("replicate.js: timed out waiting for %s", what)
		case r, open := <-p.reports:
			if !open {
				t.Fatalf("replicate.js exited while waiting for %s", what)
			}
			if r.Ev == "connect_error" || r.Ev == "disconnect" {
				t.Fatalf("replicate.js: %s %s%s while waiting for %s", r.Ev, r.Message, r.Reason, what)
			}
			if ok(r) {
				return r
			}
		}
	}
}

func TestPrototypeMediatorReplicatesOverPolling(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	a := newMediator(t, "A", nil)
	a.start(t)
	hash := randomHash(t)
	seeder := dialPeer(t, ctx, a)
	if err := seeder.Announce(ctx, hash); err != nil {
		t.Fatal(err)
	}
	sub := seeder.Subscribe(hash)
	defer sub.Close()

	proto := startProtoMediator(t, "http://"+a.addr)
	c := proto.next(t, ctx, "connect", func(r protoReport) bool { return r.Ev == "connect" })
	if c.Transport != "polling" || c.Query["b64"] == nil {
		t.Fatalf("replicate.js connected over %s with query %v, want polling with b64", c.Transport, c.Query)
	}
	protoID, remotePeer := randomID(t), randomID(t)
	proto.emit(t, "handshake", protoID, 1)
	proto.next(t, ctx, "established", func(r protoReport) bool { return r.Ev == "event" && r.Name == "established" })
	proto.emit(t, "get_peers", hash)
	r := proto.next(t, ctx, "peers", func(r protoReport) bool { return r.Ev == "event" && r.Name == "peers" })
	var ids []string
	if len(r.Args) != 2 || json.Unmarshal(r.Args[1], &ids) != nil || !slices.Equal(ids, []string{seeder.PeerID()}) {
		t.Fatalf("peers answer %s, want [%q]", r.Args, seeder.PeerID())
	}

	// A signal from the prototype mediator's peer reaches our seeder with
	// the remote peer's id as sender.
	offer := `{"type":"offer","sdp":"v=0"}`
	proto.emit(t, "signal", hash, remotePeer+seeder.PeerID(), offer)
	select {
	case <-ctx.Done():
		t.Fatal("relayed offer never reached the seeder")
	case ev := <-sub.C:
		s, ok := ev.(mediatorclient.Signal)
		if !ok || s.From != remotePeer || s.Data != offer {
			t.Fatalf("seeder got %#v, want the offer from %s", ev, remotePeer)
		}
	}
}

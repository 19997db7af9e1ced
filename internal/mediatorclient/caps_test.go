package mediatorclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// event is one event a fake mediator received.
type event struct {
	name string
	args []json.RawMessage
}

// hashes returns a batch event's hashes, or a one-hash event's hash.
func (e event) hashes(t *testing.T) []string {
	t.Helper()
	if len(e.args) != 1 {
		t.Fatalf("%s with %d arguments", e.name, len(e.args))
	}
	var hs []string
	if err := json.Unmarshal(e.args[0], &hs); err == nil {
		return hs
	}
	var h string
	if err := json.Unmarshal(e.args[0], &h); err != nil {
		t.Fatalf("%s argument %s", e.name, e.args[0])
	}
	return []string{h}
}

// fakeMediator is a mediator of ours reduced to what the client sees: it
// answers handshake with established carrying established (a JSON object,
// or nothing for the prototype's form), records every event, answers
// get_ice_servers with iceAnswer, and can cut every connection.
type fakeMediator struct {
	url         string
	established func() string // "" = no argument
	iceAnswer   func() string

	mu     sync.Mutex
	events []event
	conns  []*socketio.Conn
}

func startFake(t *testing.T, established, iceAnswer func() string) *fakeMediator {
	t.Helper()
	f := &fakeMediator{established: established, iceAnswer: iceAnswer}
	sio := &socketio.Server{Handler: f.handle, Logger: quiet()}
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
	f.url = "ws://" + ln.Addr().String()
	return f
}

func (f *fakeMediator) handle(ctx context.Context, c *socketio.Conn) {
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
	for {
		ev, err := c.ReadEvent(ctx)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.events = append(f.events, event{ev.Name, ev.Args})
		f.mu.Unlock()
		switch ev.Name {
		case mediation.EventHandshake:
			if a := f.established(); a != "" {
				c.Emit(mediation.EventEstablished, json.RawMessage(a))
			} else {
				c.Emit(mediation.EventEstablished)
			}
		case "get_ice_servers":
			if f.iceAnswer != nil {
				c.Emit("ice_servers", json.RawMessage(f.iceAnswer()))
			}
		}
	}
}

// received returns the events received so far with one of names.
func (f *fakeMediator) received(names ...string) []event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []event
	for _, e := range f.events {
		if slices.Contains(names, e.name) {
			out = append(out, e)
		}
	}
	return out
}

// waitFor polls until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fakeMediator) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.events = nil
}

func hashN(i int) string { return fmt.Sprintf("%040x", 0x2000+i) }

// Toward a mediator that advertises batch, announces, finishes and peer
// questions go in batch events of at most its batch size, finish triggers no
// re-announce (ours forgets only the hash named), and a reconnect
// re-announces everything in batches.
func TestBatchEventsTowardOurMediator(t *testing.T) {
	f := startFake(t, func() string { return `{"p2pcdn":1,"batch":3}` }, nil)
	fast := socketio.Backoff{Min: 20 * time.Millisecond, Max: 50 * time.Millisecond}
	c := dial(t, f.url, mediatorclient.Options{Backoff: fast})
	var all []string
	for i := range 7 {
		all = append(all, hashN(i))
	}
	if err := c.AnnounceMany(ctx(t), all); err != nil {
		t.Fatal(err)
	}
	checkBatches := func(name string, want []string) {
		t.Helper()
		var got []string
		evs := f.received(name)
		for _, e := range evs {
			hs := e.hashes(t)
			if len(hs) < 1 || len(hs) > 3 {
				t.Fatalf("%s with %d hashes, want 1 to 3", name, len(hs))
			}
			got = append(got, hs...)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("%s carried %v, want %v", name, got, want)
		}
		if len(evs) != (len(want)+2)/3 {
			t.Fatalf("%d %s events for %d hashes, want %d", len(evs), name, len(want), (len(want)+2)/3)
		}
	}
	// The announcer's pass at connect time found nothing yet; AnnounceMany
	// sent all seven in three events.
	waitFor(t, "announce_many", func() bool { return len(f.received("announce_many")) >= 3 })
	checkBatches("announce_many", all)

	if err := c.FinishMany(ctx(t), all[:4]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "finish_many", func() bool { return len(f.received("finish_many")) >= 2 })
	checkBatches("finish_many", all[:4])
	if err := c.GetPeersMany(ctx(t), all[:5]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "get_peers_many", func() bool { return len(f.received("get_peers_many")) >= 2 })
	checkBatches("get_peers_many", all[:5])
	time.Sleep(100 * time.Millisecond) // room for a wrong re-announce to show
	if n := len(f.received("announce_many", "announce")); n != 3 {
		t.Fatalf("%d announce events after finish, want the 3 from before (no re-announce)", n)
	}
	if n := len(f.received("announce", "finish", "get_peers")); n != 0 {
		t.Fatalf("%d one-hash events toward a batch mediator", n)
	}

	// A new connection re-announces what is left, batched.
	f.cut()
	waitFor(t, "re-announce", func() bool { return len(f.received("announce_many")) >= 1 })
	checkBatches("announce_many", all[4:])
}

// Toward the prototype's mediator (established without argument) and
// toward one whose argument we do not understand, only the prototype's
// events go out: one hash per event, no batches, no ICE questions.
func TestPrototypeEventsOnly(t *testing.T) {
	for name, est := range map[string]string{"no argument": "", "unknown argument": `{"future":2}`} {
		t.Run(name, func(t *testing.T) {
			f := startFake(t, func() string { return est }, nil)
			c := dial(t, f.url, mediatorclient.Options{EventRate: 1000, EventBurst: 100})
			hs := []string{hashN(1), hashN(2), hashN(3)}
			c.AnnounceMany(ctx(t), hs)
			c.GetPeersMany(ctx(t), hs)
			c.FinishMany(ctx(t), hs[:1])
			waitFor(t, "events", func() bool { return len(f.received("finish")) == 1 })
			if n := len(f.received("announce")); n < 3 {
				t.Fatalf("%d announce events for 3 hashes", n)
			}
			if n := len(f.received("get_peers")); n != 3 {
				t.Fatalf("%d get_peers events for 3 hashes", n)
			}
			// The prototype forgets all our hashes on finish: the other two
			// come back.
			waitFor(t, "re-announce", func() bool { return len(f.received("announce")) >= 5 })
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, e := range f.events {
				switch e.name {
				case "handshake", "announce", "finish", "get_peers":
					if e.name != "handshake" && len(e.hashes(t)) != 1 {
						t.Fatalf("%s with %d hashes", e.name, len(e.hashes(t)))
					}
				default:
					t.Fatalf("event %q sent to a prototype mediator", e.name)
				}
			}
			if got := c.ICEServers(); len(got) != 0 {
				t.Fatalf("ICE servers from a prototype mediator: %v", got)
			}
		})
	}
}

// The mediator's ICE servers are exposed (bad entries dropped: pion would
// refuse every connection for one of them) and refreshed with
// get_ice_servers before their credentials expire.
func TestICEServersFromMediator(t *testing.T) {
	var mu sync.Mutex
	round := 0
	servers := func(r int) string {
		// Expiry two seconds ahead: the client asks again after ~1.5 s.
		exp := time.Now().Add(2 * time.Second).Unix()
		return fmt.Sprintf(`"ice_servers":[{"urls":["stun:127.0.0.1:3478"]},`+
			`{"urls":["turn:127.0.0.1:3478?transport=udp"],"username":"%d:u","credential":"c%d"},`+
			`{"urls":["turn:127.0.0.1:3478"]},{"urls":["http://nope"]}],"ice_expires":%d`, exp, r, exp)
	}
	f := startFake(t,
		func() string { return `{"p2pcdn":1,` + servers(0) + `}` },
		func() string {
			mu.Lock()
			defer mu.Unlock()
			round++
			return `{` + servers(round) + `}`
		})
	c := dial(t, f.url, mediatorclient.Options{})
	got := c.ICEServers()
	if len(got) != 2 || got[0].URLs[0] != "stun:127.0.0.1:3478" || got[1].Credential != "c0" || got[1].Username == "" {
		t.Fatalf("ICEServers = %+v; want the STUN and the credentialed TURN entry", got)
	}
	waitFor(t, "fresh credentials", func() bool {
		s := c.ICEServers()
		return len(s) == 2 && s[1].Credential != "c0"
	})
	if n := len(f.received("get_ice_servers")); n < 1 {
		t.Fatal("no get_ice_servers sent")
	}
	// The copy is the caller's.
	got = c.ICEServers()
	got[0].URLs[0] = "changed"
	if c.ICEServers()[0].URLs[0] == "changed" {
		t.Fatal("ICEServers returned the client's own slice")
	}
}

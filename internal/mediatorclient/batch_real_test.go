package mediatorclient_test

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// eventsReceived reads how many events of a kind the mediator has received.
func eventsReceived(t *testing.T, addr, event string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	key := `p2pcdn_mediator_events_received_total{event="` + event + `"} `
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			var n float64
			fmt.Sscan(v, &n)
			return int(n)
		}
	}
	return 0
}

// askAll asks about every hash in batches and collects one answer per hash.
func askAll(t *testing.T, c *mediatorclient.Client, hashes []string) map[string][]string {
	t.Helper()
	subs := make(map[string]*mediatorclient.Subscription, len(hashes))
	for _, h := range hashes {
		subs[h] = c.Subscribe(h)
	}
	defer func() {
		for _, s := range subs {
			s.Close()
		}
	}()
	if err := c.GetPeersMany(ctx(t), hashes); err != nil {
		t.Fatal(err)
	}
	got := make(map[string][]string, len(hashes))
	deadline := time.After(waitTimeout)
	for _, h := range hashes {
		select {
		case ev := <-subs[h].C:
			got[h] = ev.(mediatorclient.Peers).IDs
		case <-deadline:
			t.Fatalf("no answer for %s (%d of %d answered)", h, len(got), len(hashes))
		}
	}
	return got
}

// Against our mediator: thousands of hashes go out in announce_many and
// get_peers_many (a handful of events, not one per hash), every one is
// answered, and after a mediator restart the client re-announces them all
// in batches by itself.
func TestManyHashesThroughOurMediator(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	const n = 3000
	hashes := make([]string, n)
	for i := range hashes {
		hashes[i] = fmt.Sprintf("%040x", 0x30000+i)
	}
	fast := socketio.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond, Jitter: 0.5}
	seeder := dial(t, m.url(), mediatorclient.Options{Backoff: fast})
	if err := seeder.AnnounceMany(ctx(t), hashes); err != nil {
		t.Fatal(err)
	}
	asker := dial(t, m.url(), mediatorclient.Options{})
	check := func(when string) {
		t.Helper()
		for h, ids := range askAll(t, asker, hashes) {
			if !slices.Equal(ids, []string{seeder.PeerID()}) {
				t.Fatalf("%s: %s has seeders %v, want [%s]", when, h, ids, seeder.PeerID())
			}
		}
	}
	check("announced")
	if a, s := eventsReceived(t, m.addr, "announce_many"), eventsReceived(t, m.addr, "announce"); a < n/1000 || a > n/100 || s != 0 {
		t.Fatalf("%d announce_many and %d announce events for %d hashes; want batches only", a, s, n)
	}
	if g := eventsReceived(t, m.addr, "get_peers_many"); g < 1 || g > n/100 {
		t.Fatalf("%d get_peers_many events for %d hashes", g, n)
	}

	addr := m.addr
	m.stop()
	m2 := startMediator(t, addr)
	asker = dial(t, m2.url(), mediatorclient.Options{})
	deadline := time.Now().Add(waitTimeout)
	for eventsReceived(t, m2.addr, "announce_many") < n/1000 {
		if time.Now().After(deadline) {
			t.Fatal("no re-announce after the restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The re-announce may still be on its way: ask until it is complete.
	for {
		missing := 0
		for _, ids := range askAll(t, asker, hashes) {
			if len(ids) == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d hashes not re-announced after the restart", missing, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	check("after the restart")
	if s := eventsReceived(t, m2.addr, "announce"); s != 0 {
		t.Fatalf("%d one-hash announce events after the restart; want batches only", s)
	}
}

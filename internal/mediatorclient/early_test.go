package mediatorclient_test

import (
	"slices"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
)

// TestGetPeersWithHandshake: Options.GetPeers are asked as Dial connects, and their answers wait for the
// first Subscribe of the hash, however late it comes.
func TestGetPeersWithHandshake(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	seeder := dial(t, m.url(), mediatorclient.Options{})
	if err := seeder.Announce(ctx(t), hash1); err != nil {
		t.Fatal(err)
	}
	// Announce and get_peers travel on different connections: wait until the mediator knows the seeder.
	findPeers(t, dial(t, m.url(), mediatorclient.Options{}), hash1)

	leecher := dial(t, m.url(), mediatorclient.Options{GetPeers: []string{hash1, hash2}})
	// Unsubscribed answers go to Events as before; seeing them there proves they came before Subscribe.
	answered := map[string][]string{}
	for len(answered) < 2 {
		if p, ok := next(t, leecher.Events()).(mediatorclient.Peers); ok {
			answered[p.Hash] = p.IDs
		}
	}
	if !slices.Equal(answered[hash1], []string{seeder.PeerID()}) || len(answered[hash2]) != 0 {
		t.Fatalf("answers %v, want the seeder for %s and nobody for %s", answered, hash1, hash2)
	}
	for _, h := range []string{hash1, hash2} {
		sub := leecher.Subscribe(h)
		p, ok := next(t, sub.C).(mediatorclient.Peers)
		if !ok || p.Hash != h || !slices.Equal(p.IDs, answered[h]) {
			t.Fatalf("the first subscriber of %s got %#v, want the kept answer %v", h, p, answered[h])
		}
		sub.Close()
	}
	// Kept for the first subscriber only.
	sub := leecher.Subscribe(hash1)
	defer sub.Close()
	select {
	case ev := <-sub.C:
		t.Fatalf("a second subscriber got %#v", ev)
	default:
	}
}

func TestGetPeersOptionChecked(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	if _, err := mediatorclient.Dial(ctx(t), m.url(), mediatorclient.Options{GetPeers: []string{"nothex"}, Logger: quiet()}); err == nil {
		t.Fatal("Dial took a bad hash in Options.GetPeers")
	}
}

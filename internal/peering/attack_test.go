package peering

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/swarm"
	"github.com/p2pcdn/p2pcdn/internal/testpeer"
)

// TestForgedOfferKeepsEstablishedSession (issue 11 item 7): an offer that claims to come from a peer
// we are connected with (anyone may forge a sender id through a mediator link) must not tear the
// established session down.
func TestForgedOfferKeepsEstablishedSession(t *testing.T) {
	_, url := startMediator(t)
	path, info := testFile(t, fileSize)
	seeder := join(t, url, id(1), func(pid string) *swarm.Torrent { return seedTorrent(t, path, info, pid) }, Config{Hash: info.FullHash})
	dlHost := newHostPeer(t, url, id(2), HostConfig{})
	dlTor, _ := downloadTorrent(t, info, id(2))
	dlLink := dlHost.host.Join(LinkConfig{Hash: info.FullHash, Torrent: dlTor})
	if !dlLink.Connect(id(1)) {
		t.Fatal("Connect did not dial")
	}
	eventually(t, "the seeder's session to be up", func() bool {
		return seeder.tor.Stats().Peers == 1
	})
	before := connWith(seeder.link, id(2))
	if before == nil {
		t.Fatal("no connection with the downloader")
	}
	for _, marked := range []bool{true, false} { // as a peer of ours, and as a prototype peer
		forged := captureOffer(t, testpeer.Transport(t))
		if !marked {
			sig, _ := rtc.ParseSignal(forged)
			sig.Trickle, sig.P2PCDN = false, 0
			forged = sig.String()
		}
		for range 3 {
			seeder.link.h.onSignal(seeder.link, id(2), forged)
		}
	}
	if after := connWith(seeder.link, id(2)); after != before {
		t.Fatal("a forged offer replaced the established connection")
	}
	if err := before.ctx.Err(); err != nil {
		t.Fatalf("the established connection was cancelled: %v", err)
	}
	if n := seeder.link.h.Conns(); n != 1 {
		t.Fatalf("%d connections after forged offers, want the established one alone", n)
	}
	waitDone(t, dlTor)

	// Once no channel is left the connection is idle, and a new offer from the peer (which may have
	// closed its side and dialed again) takes its place: there is nothing on it to lose.
	dlLink.Close() // its Host, and the connection, stay
	eventually(t, "the connection to go idle", func() bool {
		seeder.link.h.mu.Lock()
		defer seeder.link.h.mu.Unlock()
		return len(before.chans) == 0
	})
	seeder.link.h.onSignal(seeder.link, id(2), captureOffer(t, testpeer.Transport(t)))
	if after := connWith(seeder.link, id(2)); after == before || after == nil {
		t.Fatal("a new offer did not replace the idle connection")
	}
	if before.ctx.Err() == nil {
		t.Fatal("the idle connection was not closed")
	}
}

// TestOfferFloodDoesNotStarveDownloaders (issue 11 item 6): offers from ever new ids, ten a second,
// whose candidates lead nowhere, must not keep a real downloader out of a seeder's session slots.
func TestOfferFloodDoesNotStarveDownloaders(t *testing.T) {
	srv, url := startMediator(t)
	path, info := testFile(t, fileSize)
	offer := captureOffer(t, testpeer.Transport(t)) // its ports are closed once captured
	const max = 8
	seeder := join(t, url, id(1), func(pid string) *swarm.Torrent { return seedTorrent(t, path, info, pid) },
		Config{Hash: info.FullHash, MaxPeers: max})

	stop := make(chan struct{})
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				srv.DeliverSignal(info.FullHash, id(10000+i), id(1), offer)
			}
		}
	}()
	defer func() { close(stop); <-flooded }()
	eventually(t, "the flood to fill the seeder's slots", func() bool { return seeder.link.Sessions() >= max })

	dl := join(t, url, id(2), func(pid string) *swarm.Torrent { tor, _ := downloadTorrent(t, info, pid); return tor }, Config{Hash: info.FullHash})
	retry := time.NewTicker(200 * time.Millisecond) // as get keeps asking
	defer retry.Stop()
	deadline := time.After(waitTimeout)
	for {
		select {
		case <-dl.tor.Done():
			if n := seeder.link.Sessions(); n > max {
				t.Errorf("%d sessions, MaxPeers %d", n, max)
			}
			return
		case <-retry.C:
			dl.link.Connect(id(1))
		case <-deadline:
			t.Fatalf("the downloader never got a session with the flooded seeder; its torrent: %+v", dl.tor.Stats())
		}
	}
}

// TestMaxPerAddress: offers from one address take at most MaxPerAddress slots, newer ones replacing
// the oldest unproven; other addresses still get in.
func TestMaxPerAddress(t *testing.T) {
	_, url := startMediator(t)
	path, info := testFile(t, fileSize)
	offer := captureOffer(t, testpeer.Transport(t))
	from := func(addr string) string { // the offer, its candidates moved to addr
		sig, err := rtc.ParseSignal(offer)
		if err != nil {
			t.Fatal(err)
		}
		sig.SDP = strings.ReplaceAll(sig.SDP, " 127.0.0.1 ", " "+addr+" ")
		if got := rtc.FirstCandidateAddress(sig.SDP); got != addr {
			t.Fatalf("rewritten offer comes from %q", got)
		}
		return sig.String()
	}
	l := join(t, url, id(1), func(pid string) *swarm.Torrent { return seedTorrent(t, path, info, pid) },
		Config{Hash: info.FullHash, MaxPeers: 8, MaxPerAddress: 2})
	count := func(addr string) int {
		l.link.h.mu.Lock()
		defer l.link.h.mu.Unlock()
		return l.link.h.countAddrLocked(addr)
	}
	for i := range 6 {
		l.link.h.onSignal(l.link, id(100+i), from("192.0.2.9"))
		if n := count("192.0.2.9"); n > 2 {
			t.Fatalf("%d sessions from one address, MaxPerAddress 2", n)
		}
	}
	if connWith(l.link, id(105)) == nil {
		t.Error("the newest offer did not replace an older one from its address")
	}
	for i := range 2 {
		l.link.h.onSignal(l.link, id(200+i), from("192.0.2.10"))
	}
	if n := l.link.Sessions(); n != 4 {
		t.Errorf("%d sessions, want 2 per address", n)
	}
}

// connWith returns the Host's connection (shared, or for the link's file) with peer.
func connWith(l *Link, peer string) *pconn {
	l.h.mu.Lock()
	defer l.h.mu.Unlock()
	if c := l.h.shared[peer]; c != nil {
		return c
	}
	return l.h.single[pkey{peer, l.hash}]
}

// TestRefusedChannelFloodClosesConnection: a peer that keeps opening channels for files we do not
// have (each refused channel costs a drain of up to 10 s with a 256 KiB buffer) loses its connection
// after a small burst, instead of being refused channel after channel for as long as it likes.
func TestRefusedChannelFloodClosesConnection(t *testing.T) {
	_, url := startMediator(t)
	paths, infos := testFiles(t, 1)
	hash := infos[0].FullHash
	seeder := newHostPeer(t, url, id(1), HostConfig{})
	seeder.host.Join(LinkConfig{Hash: hash, Torrent: seedTorrent(t, paths[0], infos[0], id(1))})

	// The attacker: a peer of ours by its signals, dialing the seeder by hand.
	client := testpeer.Dial(t, url, id(2))
	sub := client.Subscribe(hash)
	t.Cleanup(sub.Close)
	recv := make(chan string, 64)
	go func() {
		for ev := range sub.C {
			if s, ok := ev.(mediatorclient.Signal); ok && s.From == id(1) {
				recv <- s.Data
			}
		}
	}()
	send := func(ctx context.Context, sig string) error { return client.Signal(ctx, hash, id(1), sig) }
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	peer, _, err := testpeer.Transport(t).DialPeer(ctx, rtc.Options{Label: labelPrefix + hash}, send, recv)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	const tries = 200
	refused := 0
	for i := range tries {
		c, err := peer.OpenChannel(ctx, labelPrefix+fmt.Sprintf("%040x", 1000+i))
		if err != nil {
			break // the connection is gone
		}
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a channel for a file the seeder does not have was served")
		}
		c.Close()
		refused++
	}
	if refused == tries {
		t.Fatalf("all %d channels refused one by one, the connection still up", tries)
	}
	select {
	case <-peer.Done():
	case <-ctx.Done():
		t.Fatalf("the connection is still up after %d refused channels", refused)
	}
	if refused > refusalBurst+4 {
		t.Errorf("%d channels refused before the connection closed, want about %d", refused, refusalBurst)
	}
	eventually(t, "the seeder to forget the connection", func() bool { return seeder.host.Conns() == 0 })
}

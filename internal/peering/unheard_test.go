package peering

import (
	"context"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/testpeer"
)

// TestUnansweredChannelClosesConnection: a channel we open on a shared connection that the remote never
// answers (pion's SCTP drops new streams beyond 16 waiting to be accepted, and the remote's accept loop
// then stalls) closes the connection after unheardTimeout, so the files find the peer again on a new one,
// instead of waiting out the handshake timeout and the idle timeout behind it.
func TestUnansweredChannelClosesConnection(t *testing.T) {
	_, url := startMediator(t)
	_, infos := testFiles(t, 2)
	a, b := infos[0].FullHash, infos[1].FullHash
	dl := newHostPeer(t, url, id(2), HostConfig{})
	torA, _ := downloadTorrent(t, infos[0], id(2))
	dl.host.Join(LinkConfig{Hash: a, Torrent: torA})

	// The remote: a peer of ours by its signals, driven by hand, that takes no channel and says nothing.
	client := testpeer.Dial(t, url, id(1))
	sub := client.Subscribe(a)
	t.Cleanup(sub.Close)
	recv := make(chan string, 64)
	go func() {
		for ev := range sub.C {
			if s, ok := ev.(mediatorclient.Signal); ok && s.From == id(2) {
				recv <- s.Data
			}
		}
	}()
	send := func(ctx context.Context, sig string) error { return client.Signal(ctx, a, id(2), sig) }
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	peer, _, err := testpeer.Transport(t).DialPeer(ctx, rtc.Options{Label: labelPrefix + a}, send, recv)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	eventually(t, "the downloader to take the connection", func() bool { return dl.host.Conns() == 1 })

	torB, _ := downloadTorrent(t, infos[1], id(2))
	if !dl.host.Join(LinkConfig{Hash: b, Torrent: torB}).Connect(id(1)) {
		t.Fatal("Connect did not open a channel on the connection")
	}
	// Well before the 30 s handshake timeout (and the idle timeout after it) would end it.
	select {
	case <-peer.Done():
	case <-time.After(unheardTimeout + 15*time.Second):
		t.Fatalf("the connection is still up %v after a channel went unanswered", unheardTimeout+15*time.Second)
	}
	eventually(t, "the downloader to forget the connection", func() bool { return dl.host.Conns() == 0 })
}

package peering

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/swarm"
	"github.com/p2pcdn/p2pcdn/internal/testpeer"
)

// testFiles writes n files of distinct content and returns their paths and dictionaries.
func testFiles(t testing.TB, n int) ([]string, []*content.Info) {
	t.Helper()
	var paths []string
	var infos []*content.Info
	dir := t.TempDir()
	for i := range n {
		data := make([]byte, 250_000+i*1000)
		for j := range data {
			data[j] = byte(j*7 + 3 + i)
		}
		path := filepath.Join(dir, fmt.Sprintf("f%d.bin", i))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		info, err := content.HashFile(context.Background(), path, nil)
		if err != nil {
			t.Fatal(err)
		}
		paths, infos = append(paths, path), append(infos, info)
	}
	return paths, infos
}

// hostPeer is a process stand-in: its own mediator client, transport and Host.
type hostPeer struct {
	client *mediatorclient.Client
	tr     *rtc.Transport
	host   *Host
}

func newHostPeer(t testing.TB, url, peerID string, cfg HostConfig) *hostPeer {
	t.Helper()
	p := &hostPeer{client: testpeer.Dial(t, url, peerID), tr: testpeer.Transport(t)}
	cfg.Client, cfg.Transport = p.client, p.tr
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	p.host = NewHost(context.Background(), cfg)
	t.Cleanup(p.host.Close)
	return p
}

// TestOneConnectionPerPair: two peers of ours exchanging several files share one peer connection, a
// channel per file; when no channel is left it closes after the idle time.
func TestOneConnectionPerPair(t *testing.T) {
	_, url := startMediator(t)
	paths, infos := testFiles(t, 3)
	seeder := newHostPeer(t, url, id(1), HostConfig{IdleTimeout: 300 * time.Millisecond})
	dl := newHostPeer(t, url, id(2), HostConfig{})
	var links []*Link
	var tors []*swarm.Torrent
	for i, info := range infos {
		seeder.host.Join(LinkConfig{Hash: info.FullHash, Torrent: seedTorrent(t, paths[i], info, id(1))})
		tor, _ := downloadTorrent(t, info, id(2))
		links = append(links, dl.host.Join(LinkConfig{Hash: info.FullHash, Torrent: tor}))
		tors = append(tors, tor)
	}
	// The first file dials; the others queue on the connection being set up, or open a channel on it.
	for _, l := range links {
		if !l.Connect(id(1)) {
			t.Fatal("Connect did not start anything")
		}
		if l.Connect(id(1)) {
			t.Fatal("Connect started a second session for one file")
		}
	}
	for _, tor := range tors {
		waitDone(t, tor)
	}
	if a, b := seeder.host.Conns(), dl.host.Conns(); a != 1 || b != 1 {
		t.Fatalf("connections: seeder %d, downloader %d; want 1 each", a, b)
	}
	if a, b := seeder.tr.Peers(), dl.tr.Peers(); a != 1 || b != 1 {
		t.Fatalf("pion peer connections: seeder %d, downloader %d; want 1 each", a, b)
	}
	// A fourth file, asked for on the open connection, arrives on it too.
	more, moreInfo := testFiles(t, 4)
	seeder.host.Join(LinkConfig{Hash: moreInfo[3].FullHash, Torrent: seedTorrent(t, more[3], moreInfo[3], id(1))})
	tor4, _ := downloadTorrent(t, moreInfo[3], id(2))
	l4 := dl.host.Join(LinkConfig{Hash: moreInfo[3].FullHash, Torrent: tor4})
	if !l4.Connect(id(1)) {
		t.Fatal("Connect did not open a channel on the open connection")
	}
	waitDone(t, tor4)
	if a, b := seeder.tr.Peers(), dl.tr.Peers(); a != 1 || b != 1 {
		t.Fatalf("after a fourth file, pion peer connections: seeder %d, downloader %d; want 1 each", a, b)
	}
	// The downloader leaves every file: the connection has no channel left and closes once idle.
	for _, l := range append(links, l4) {
		l.Close()
	}
	eventually(t, "the idle connection to close", func() bool { return seeder.host.Conns() == 0 && seeder.tr.Peers() == 0 })
}

// TestChannelForUnknownFileRefused: a peer that asks, over an open connection, for a file we do not
// have gets its channel closed, takes that as "not here", and does not ask again at once.
func TestChannelForUnknownFileRefused(t *testing.T) {
	_, url := startMediator(t)
	paths, infos := testFiles(t, 2)
	seeder := newHostPeer(t, url, id(1), HostConfig{})
	dl := newHostPeer(t, url, id(2), HostConfig{})
	seeder.host.Join(LinkConfig{Hash: infos[0].FullHash, Torrent: seedTorrent(t, paths[0], infos[0], id(1))})
	tor0, _ := downloadTorrent(t, infos[0], id(2))
	dl.host.Join(LinkConfig{Hash: infos[0].FullHash, Torrent: tor0}).Connect(id(1))
	waitDone(t, tor0)
	tor1, _ := downloadTorrent(t, infos[1], id(2))
	l1 := dl.host.Join(LinkConfig{Hash: infos[1].FullHash, Torrent: tor1})
	if !l1.Connect(id(1)) {
		t.Fatal("Connect did not open a channel")
	}
	eventually(t, "the refused channel to end", func() bool { return l1.Sessions() == 0 })
	if l1.Connect(id(1)) {
		t.Error("Connect asked again right after the peer refused the file")
	}
	if n := dl.host.Conns(); n != 1 {
		t.Errorf("%d connections: a refused channel must leave the connection up", n)
	}
}

// unmark strips our marks from a signal, as a prototype peer's would look.
func unmark(t testing.TB, s string) string {
	sig, err := rtc.ParseSignal(s)
	if err != nil {
		t.Fatal(err)
	}
	sig.Trickle, sig.P2PCDN = false, 0
	return sig.String()
}

// TestPrototypePeerConnectionPerFile: toward a peer whose signals are unmarked (the prototype's), each
// file gets a connection of its own, whoever dials, and the files queued on a dial that turns out to
// reach such a peer get theirs.
func TestPrototypePeerConnectionPerFile(t *testing.T) {
	_, url := startMediator(t)
	paths, infos := testFiles(t, 2)
	ours := newHostPeer(t, url, id(1), HostConfig{})
	var oursTors []*swarm.Torrent
	var oursLinks []*Link
	for _, info := range infos {
		tor, _ := downloadTorrent(t, info, id(1))
		oursTors = append(oursTors, tor)
		oursLinks = append(oursLinks, ours.host.Join(LinkConfig{Hash: info.FullHash, Torrent: tor}))
	}

	// The prototype-style peer: it seeds both files and answers every offer with unmarked signals, one
	// connection per offer.
	pc := testpeer.Dial(t, url, id(2))
	ptr := testpeer.Transport(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	offers := make(chan mediatorclient.Signal, 8)
	for _, info := range infos {
		sub := pc.Subscribe(info.FullHash)
		t.Cleanup(sub.Close)
		go func() {
			for ev := range sub.C {
				if s, ok := ev.(mediatorclient.Signal); ok {
					if sig, err := rtc.ParseSignal(s.Data); err == nil && sig.Type == rtc.SignalOffer {
						offers <- s
					}
				}
			}
		}()
	}
	go func() {
		for {
			var s mediatorclient.Signal
			select {
			case s = <-offers:
			case <-ctx.Done():
				return
			}
			var tor *swarm.Torrent
			for i, info := range infos {
				if info.FullHash == s.Hash {
					tor = seedTorrent(t, paths[i], info, id(2))
				}
			}
			send := func(ctx context.Context, sig string) error {
				sg, _ := rtc.ParseSignal(sig)
				if sg.Type == rtc.SignalCandidate {
					return nil // the prototype does not trickle
				}
				return pc.Signal(ctx, s.Hash, s.From, unmark(t, sig))
			}
			go func() {
				c, err := ptr.Accept(ctx, unmark(t, s.Data), send, nil)
				if err != nil {
					return
				}
				tor.AddPeer(ctx, c, false, c.RemoteAddr())
			}()
		}
	}()
	// Both files at once: the second queues on the first's dial, which reaches a prototype peer.
	for _, l := range oursLinks {
		if !l.Connect(id(2)) {
			t.Fatal("Connect did not start anything")
		}
	}
	for _, tor := range oursTors {
		waitDone(t, tor)
	}
	if n := ours.host.Conns(); n != 2 {
		t.Errorf("%d connections with a prototype peer for 2 files, want 2", n)
	}
	if n := ours.tr.Peers(); n != 2 {
		t.Errorf("%d pion peer connections, want 2", n)
	}

	// Now the prototype-style peer fetches both files from us, offering unmarked: a connection each.
	for i, l := range oursLinks {
		l.Close()
		ours.host.Join(LinkConfig{Hash: infos[i].FullHash, Torrent: seedTorrent(t, paths[i], infos[i], id(1))})
	}
	eventually(t, "the connections of the closed links to end", func() bool { return ours.host.Conns() == 0 })
	for _, info := range infos {
		tor, _ := downloadTorrent(t, info, id(2))
		answers := make(chan string, 16)
		sub := pc.Subscribe(info.FullHash)
		t.Cleanup(sub.Close)
		go func() {
			for ev := range sub.C {
				if s, ok := ev.(mediatorclient.Signal); ok && s.From == id(1) {
					answers <- s.Data
				}
			}
		}()
		send := func(ctx context.Context, sig string) error {
			return pc.Signal(ctx, info.FullHash, id(1), unmark(t, sig))
		}
		c, err := ptr.Dial(ctx, send, answers)
		if err != nil {
			t.Fatalf("the prototype-style peer's dial: %v", err)
		}
		go tor.AddPeer(ctx, c, true, c.RemoteAddr())
		waitDone(t, tor)
	}
	if n := ours.host.Conns(); n != 2 {
		t.Errorf("%d connections after the prototype-style peer fetched 2 files from us, want 2", n)
	}
}

package peering

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/swarm"
	"github.com/p2pcdn/p2pcdn/internal/testpeer"
)

const fileSize = 450_000 // three pieces, the last one short

// linkGoroutines returns the stacks of goroutines a Link started, which must
// all have ended once Close returns. A goroutine that has just called
// wg.Done may still be on its way out, so this gives them a moment.
func linkGoroutines() string {
	var out []string
	for range 100 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		out = out[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "created by github.com/p2pcdn/p2pcdn/internal/peering.") {
				out = append(out, g)
			}
		}
		if len(out) == 0 {
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
	return strings.Join(out, "\n\n")
}

// TestGlareTwoLinks: both peers dial each other at once; exactly one
// connection survives, the file arrives, and Close leaves nothing running.
func TestGlareTwoLinks(t *testing.T) {
	_, url := startMediator(t)
	path, info := testFile(t, fileSize)
	base := runtime.NumGoroutine()

	a := join(t, url, id(1), func(pid string) *swarm.Torrent { return seedTorrent(t, path, info, pid) }, Config{Hash: info.FullHash})
	b := join(t, url, id(2), func(pid string) *swarm.Torrent { tor, _ := downloadTorrent(t, info, pid); return tor }, Config{Hash: info.FullHash})

	var ready, wg sync.WaitGroup
	ready.Add(1)
	dialed := make([]bool, 2)
	for i, p := range []struct {
		l  *Link
		to string
	}{{a.link, id(2)}, {b.link, id(1)}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Wait()
			dialed[i] = p.l.Connect(p.to)
		}()
	}
	ready.Done()
	wg.Wait()
	if !dialed[0] || !dialed[1] {
		t.Fatalf("Connect reported %v, want both true (no session existed yet)", dialed)
	}

	waitDone(t, b.tor)
	eventually(t, "one session on each side", func() bool {
		return a.link.Sessions() == 1 && b.link.Sessions() == 1 &&
			a.tor.Stats().Peers == 1 && b.tor.Stats().Peers == 1
	})
	if a.link.Connect(id(2)) || b.link.Connect(id(1)) {
		t.Fatal("Connect dialed a peer that already has a session")
	}

	for _, p := range []*peer{a, b} {
		p.link.Close()
	}
	if s := linkGoroutines(); s != "" {
		t.Fatalf("goroutines still running after Close:\n%s", s)
	}
	if n := a.link.Sessions() + b.link.Sessions(); n != 0 {
		t.Fatalf("%d sessions left after Close", n)
	}
	if a.link.Connect(id(2)) {
		t.Fatal("Connect dialed after Close")
	}
	for _, p := range []*peer{a, b} {
		p.tor.Close()
		p.client.Close()
		p.tr.Close()
	}
	settleGoroutines(t, base)
}

// TestGlareTieBreak makes the glare deterministic with a hand-driven remote
// peer: the offer of the peer with the higher id wins, on both orders.
func TestGlareTieBreak(t *testing.T) {
	for _, tc := range []struct {
		name         string
		link, remote string
	}{
		{"remote id higher", id(1), id(2)},
		{"link id higher", id(2), id(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, url := startMediator(t)
			path, info := testFile(t, fileSize)
			l := join(t, url, tc.link, func(pid string) *swarm.Torrent { return seedTorrent(t, path, info, pid) }, Config{Hash: info.FullHash})

			// The remote: a bare client and transport driven by the test.
			rc := testpeer.Dial(t, url, tc.remote)
			rtr := testpeer.Transport(t)
			rtor, _ := downloadTorrent(t, info, tc.remote)
			sub := rc.Subscribe(info.FullHash)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()

			if !l.link.Connect(tc.remote) {
				t.Fatal("Connect did not dial")
			}
			offers := make(chan string, 4)
			answers := make(chan string, 4)
			go func() {
				for ev := range sub.C {
					s, ok := ev.(mediatorclient.Signal)
					if !ok || s.From != tc.link {
						continue
					}
					sig, err := rtc.ParseSignal(s.Data)
					if err != nil {
						continue
					}
					if sig.Type == rtc.SignalOffer {
						offers <- s.Data
					} else {
						answers <- s.Data
					}
				}
			}()
			defer sub.Close()
			var linkOffer string
			select {
			case linkOffer = <-offers:
			case <-ctx.Done():
				t.Fatal("the link sent no offer")
			}

			// Now the remote dials too, while the link's dial is pending.
			send := func(ctx context.Context, s string) error { return rc.Signal(ctx, info.FullHash, tc.link, s) }
			dctx, dcancel := context.WithCancel(ctx)
			defer dcancel()
			type result struct {
				c   rtc.Conn
				err error
			}
			dialed := make(chan result, 1)
			go func() {
				c, err := rtr.Dial(dctx, send, answers)
				dialed <- result{c, err}
			}()

			var conn rtc.Conn
			initiator := false
			if tc.remote > tc.link {
				// Our offer wins: the link gives up its dial and answers.
				r := <-dialed
				if r.err != nil {
					t.Fatalf("the link did not answer the higher id's offer: %v", r.err)
				}
				conn, initiator = r.c, true
			} else {
				// The link's offer wins: it ignores ours; we answer its.
				c, err := rtr.Accept(ctx, linkOffer, send, make(chan string))
				if err != nil {
					t.Fatalf("accepting the link's offer: %v", err)
				}
				conn = c
			}
			go rtor.AddPeer(ctx, conn, initiator, conn.RemoteAddr())
			waitDone(t, rtor)
			if n := l.link.Sessions(); n != 1 {
				t.Fatalf("link has %d sessions, want 1", n)
			}
			if tc.remote < tc.link {
				dcancel()
				if r := <-dialed; r.err == nil {
					r.c.Close()
					t.Fatal("the link answered the lower id's offer during glare")
				}
			}
			if n := l.tor.Stats().Peers; n != 1 {
				t.Fatalf("link's torrent has %d peers, want 1", n)
			}
		})
	}
}

// TestMaxPeersUnderOfferFlood: offers from many ids never push the sessions
// past MaxPeers, and Close ends every negotiation.
func TestMaxPeersUnderOfferFlood(t *testing.T) {
	srv, url := startMediator(t)
	path, info := testFile(t, fileSize)
	offer := captureOffer(t, testpeer.Transport(t))
	base := runtime.NumGoroutine()

	const max = 4
	l := join(t, url, id(1), func(pid string) *swarm.Torrent { return seedTorrent(t, path, info, pid) },
		Config{Hash: info.FullHash, MaxPeers: max, SignalTimeout: 5 * time.Minute})

	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := int64(l.link.Sessions()); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			default:
				runtime.Gosched()
			}
		}
	}()
	const flood = 40
	for i := range flood {
		if !srv.DeliverSignal(info.FullHash, id(1000+i), id(1), offer) {
			t.Fatal("the mediator does not know the link's client")
		}
	}
	eventually(t, "the link to fill up", func() bool { return l.link.Sessions() >= max })
	// Let the rest of the flood arrive and be refused.
	time.Sleep(500 * time.Millisecond)
	if l.link.Connect(id(5000)) {
		t.Error("Connect dialed while the link was full")
	}
	close(stop)
	<-sampled
	if p := peak.Load(); p > max {
		t.Fatalf("peak sessions %d, MaxPeers %d", p, max)
	}
	if n := l.link.Sessions(); n != max {
		t.Fatalf("%d sessions after the flood, want %d", n, max)
	}

	l.link.Close()
	if s := linkGoroutines(); s != "" {
		t.Fatalf("goroutines still running after Close:\n%s", s)
	}
	l.tor.Close()
	l.client.Close()
	l.tr.Close()
	settleGoroutines(t, base)
}

// TestBannedPeerNotRedialed: a seeder that serves corrupt pieces is banned;
// the link neither dials it again nor answers its offers.
func TestBannedPeerNotRedialed(t *testing.T) {
	_, url := startMediator(t)
	_, info := testFile(t, fileSize)
	good := join(t, url, id(1), func(pid string) *swarm.Torrent { tor, _ := downloadTorrent(t, info, pid); return tor }, Config{Hash: info.FullHash})
	bad := join(t, url, id(2), func(pid string) *swarm.Torrent { return newTorrent(t, info, pid, corruptReader{}) },
		Config{Hash: info.FullHash, SignalTimeout: 5 * time.Second})

	if !good.link.Connect(id(2)) {
		t.Fatal("Connect did not dial")
	}
	eventually(t, "the corrupt peer to be banned", func() bool {
		good.link.h.mu.Lock()
		defer good.link.h.mu.Unlock()
		return good.link.banned[id(2)]
	})
	eventually(t, "the banned session to end", func() bool { return good.link.Sessions() == 0 })
	if good.link.Connect(id(2)) {
		t.Fatal("Connect redialed a banned peer")
	}

	// The banned peer dials us: its offer must go unanswered, so its
	// negotiation times out.
	eventually(t, "the bad peer to see the disconnection", func() bool { return bad.link.Sessions() == 0 })
	if !bad.link.Connect(id(1)) {
		t.Fatal("the bad peer's Connect did not dial")
	}
	eventually(t, "the bad peer's dial to fail", func() bool {
		if n := good.link.Sessions(); n != 0 {
			t.Fatalf("the link started a session with a banned peer's offer (%d sessions)", n)
		}
		return bad.link.Sessions() == 0
	})
	if st := good.tor.Stats(); st.Peers != 0 || st.PiecesHave != 0 {
		t.Fatalf("stats after the ban: %+v", st)
	}
}

// TestGarbageSignalsIgnored: malformed signals neither crash the link nor
// leave sessions behind, and a real peer still connects afterwards.
func TestGarbageSignalsIgnored(t *testing.T) {
	srv, url := startMediator(t)
	path, info := testFile(t, fileSize)
	selfOffer := captureOffer(t, testpeer.Transport(t))
	seeder := join(t, url, id(1), func(pid string) *swarm.Torrent { return seedTorrent(t, path, info, pid) }, Config{Hash: info.FullHash})

	garbage := []string{
		"", "not json", "null", "[]", "{}", `{"type":1}`, `"offer"`,
		`{"type":"offer"}`, `{"type":"answer","sdp":"v=0"}`, `{"type":"candidate"}`,
		`{"renegotiate":true}`, `{"transceiverRequest":{"kind":"audio"}}`,
		`{"type":"offer","sdp":"garbage"}`,
		`{"type":"offer","sdp":"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"}`,
		`{"type":"offer","sdp":"` + strings.Repeat("a", rtc.MaxSignalSize) + `"}`,
		strings.Repeat("{", 10000),
	}
	for i, g := range garbage {
		srv.DeliverSignal(info.FullHash, id(100+i), id(1), g)
	}
	// A valid offer claiming to come from the link itself is dropped.
	srv.DeliverSignal(info.FullHash, id(1), id(1), selfOffer)
	eventually(t, "every bad negotiation to end", func() bool { return seeder.link.Sessions() == 0 })

	dl := join(t, url, id(2), func(pid string) *swarm.Torrent { tor, _ := downloadTorrent(t, info, pid); return tor }, Config{Hash: info.FullHash})
	if !dl.link.Connect(id(1)) {
		t.Fatal("Connect did not dial")
	}
	waitDone(t, dl.tor)
}

// TestCloseWhileConnecting: Close returns only after sessions in every
// state have ended, including one blocked in negotiation.
func TestCloseWhileConnecting(t *testing.T) {
	_, url := startMediator(t)
	path, info := testFile(t, fileSize)
	l := join(t, url, id(1), func(pid string) *swarm.Torrent { return seedTorrent(t, path, info, pid) }, Config{Hash: info.FullHash})
	// id(7) is not connected anywhere: the dial waits for an answer that
	// never comes.
	if !l.link.Connect(id(7)) {
		t.Fatal("Connect did not dial")
	}
	if l.link.Connect(id(7)) {
		t.Fatal("Connect dialed the same peer twice")
	}
	if l.link.Connect(id(1)) {
		t.Fatal("Connect dialed ourselves")
	}
	closed := make(chan struct{})
	go func() { l.link.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(waitTimeout):
		t.Fatal("Close hung")
	}
	if s := linkGoroutines(); s != "" {
		t.Fatalf("goroutines still running after Close:\n%s", s)
	}
	if l.link.Connect(id(8)) {
		t.Fatal("Connect dialed after Close")
	}
}

// FuzzOnSignal feeds arbitrary signals from arbitrary ids to a link whose
// transport is closed (so an accepted offer fails at once): nothing panics
// and the sessions stay within MaxPeers.
func FuzzOnSignal(f *testing.F) {
	_, url := startMediator(f)
	tr := testpeer.Transport(f)
	offer := captureOffer(f, tr)
	tr.Close()
	client := testpeer.Dial(f, url, id(1))
	_, info := testFile(f, 1000)
	tor := newTorrent(f, info, id(1), corruptReader{})
	l := Join(context.Background(), Config{Hash: info.FullHash, Client: client, Transport: tr, Torrent: tor, Logger: quiet(), MaxPeers: 2})
	f.Cleanup(l.Close)
	l.Connect(id(3)) // a pending dial, for glare with id(3)'s offers
	for _, s := range []string{offer, "", "{}", `{"type":"answer","sdp":"x"}`, `{"candidate":{"candidate":"x"}}`, `{"type":"offer","sdp":"v=0"}`} {
		f.Add(3, s)
		f.Add(9, s)
	}
	f.Fuzz(func(t *testing.T, from int, data string) {
		l.h.onSignal(l, id(from), data)
		if n := l.Sessions(); n > 2 {
			t.Fatalf("%d sessions, MaxPeers 2", n)
		}
	})
}

// TestConnectRacingClose: Connect calls racing Close (under -race) leave no
// session behind, and Connect refuses once Close has returned.
func TestConnectRacingClose(t *testing.T) {
	_, url := startMediator(t)
	_, info := testFile(t, 1000)
	tr := testpeer.Transport(t)
	tr.Close() // dials fail at once: only the bookkeeping is exercised
	client := testpeer.Dial(t, url, id(1))
	tor := newTorrent(t, info, id(1), corruptReader{})
	for round := range 20 {
		l := Join(context.Background(), Config{Hash: info.FullHash, Client: client, Transport: tr, Torrent: tor, Logger: quiet(), MaxPeers: 1 << 20})
		var wg sync.WaitGroup
		var closed atomic.Bool
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !closed.Load(); i++ {
					l.Connect(id(round<<24 | g<<20 | i))
				}
			}()
		}
		time.Sleep(time.Millisecond)
		l.Close()
		closed.Store(true)
		wg.Wait()
		if l.Connect(id(1 << 30)) {
			t.Fatal("Connect dialed after Close")
		}
		if s := linkGoroutines(); s != "" {
			t.Fatalf("round %d: goroutines still running after Close:\n%s", round, s)
		}
		if n := l.Sessions(); n != 0 {
			t.Fatalf("round %d: %d sessions after Close", round, n)
		}
	}
}

package peering

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/mediator"
	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/store"
	"github.com/p2pcdn/p2pcdn/internal/swarm"
	"github.com/p2pcdn/p2pcdn/internal/testpeer"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

// waitTimeout is generous: the machine is shared and -race is slow. It
// guards against hangs; it measures nothing.
const waitTimeout = 60 * time.Second

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// id returns a fixed peer id, so tests can order ids on purpose.
func id(n int) string { return fmt.Sprintf("%040x", n) }

// startMediator serves an in-process mediator on a loopback port until the
// test ends; it returns the server and its URL.
func startMediator(t testing.TB) (*mediator.Server, string) {
	t.Helper()
	m := testpeer.StartMediator(t)
	return m.Server, m.URL()
}

// testFile writes size bytes of a fixed pattern and returns its path and
// info dictionary (200000-byte pieces, so the last one is short).
func testFile(t testing.TB, size int) (string, *content.Info) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	path := filepath.Join(t.TempDir(), "file.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := content.HashFile(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return path, info
}

// newTorrent returns a torrent for info under client's peer id, served by r.
func newTorrent(t testing.TB, info *content.Info, peerID string, r swarm.PieceReader) *swarm.Torrent {
	t.Helper()
	ih, err := wire.DecodeID(info.FullHash)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := wire.DecodeID(peerID)
	if err != nil {
		t.Fatal(err)
	}
	tor, err := swarm.New(swarm.Config{
		InfoHash: ih, PeerID: pid, Info: info, Logger: quiet(),
		Open: func(*content.Info) (swarm.PieceReader, error) { return r, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tor.Close() })
	return tor
}

func seedTorrent(t testing.TB, path string, info *content.Info, peerID string) *swarm.Torrent {
	t.Helper()
	sf, err := store.OpenSeed(path, info)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sf.Close() })
	return newTorrent(t, info, peerID, sf)
}

func downloadTorrent(t testing.TB, info *content.Info, peerID string) (*swarm.Torrent, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.bin")
	dl, err := store.OpenDownload(path, info)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	return newTorrent(t, info, peerID, dl), path
}

// corruptReader claims every piece and serves junk: a lying seeder.
type corruptReader struct{}

func (corruptReader) Has(int) bool { return true }
func (corruptReader) ReadBlock(_, _ int, p []byte) error {
	for i := range p {
		p[i] = 0x5a
	}
	return nil
}

// peer is one side of a test: a mediator client, a transport and a link.
type peer struct {
	client *mediatorclient.Client
	tr     *rtc.Transport
	tor    *swarm.Torrent
	link   *Link
}

func join(t testing.TB, url, peerID string, tor func(peerID string) *swarm.Torrent, cfg Config) *peer {
	t.Helper()
	p := &peer{client: testpeer.Dial(t, url, peerID), tr: testpeer.Transport(t)}
	p.tor = tor(peerID)
	cfg.Client, cfg.Transport, cfg.Torrent = p.client, p.tr, p.tor
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	p.link = Join(context.Background(), cfg)
	t.Cleanup(p.link.Close)
	return p
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitDone(t testing.TB, tor *swarm.Torrent) {
	t.Helper()
	select {
	case <-tor.Done():
	case <-tor.Stopped():
		t.Fatalf("torrent stopped: %v", tor.Err())
	case <-time.After(waitTimeout):
		t.Fatalf("download did not complete; stats %+v", tor.Stats())
	}
}

// settleGoroutines waits until the goroutine count is back to base: pion
// ends some of its goroutines shortly after a connection closes.
func settleGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, %d before; still running:\n%s", n, base, ourStacks(string(buf)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ourStacks keeps the goroutine dumps that mention this project.
func ourStacks(all string) string {
	var out []string
	for _, g := range strings.Split(all, "\n\n") {
		if strings.Contains(g, "p2pcdn/internal") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// captureOffer makes a real offer with tr and returns its signal text; the
// dial behind it is abandoned.
func captureOffer(t testing.TB, tr *rtc.Transport) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	got := make(chan string, 1)
	send := func(_ context.Context, s string) error {
		got <- s
		cancel()
		return nil
	}
	tr.Dial(ctx, send, make(chan string))
	select {
	case s := <-got:
		return s
	default:
		t.Fatal("no offer was made")
		return ""
	}
}

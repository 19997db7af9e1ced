package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/peering"
	"github.com/p2pcdn/p2pcdn/internal/seed"
	"github.com/p2pcdn/p2pcdn/internal/store"
	"github.com/p2pcdn/p2pcdn/internal/swarm"
	"github.com/p2pcdn/p2pcdn/internal/testpeer"
	"github.com/p2pcdn/p2pcdn/internal/wire"
)

// waitTimeout guards against hangs on a busy machine; it measures nothing.
const waitTimeout = 90 * time.Second

const fileSize = 450_000 // three pieces, the last one 50,000 bytes

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func pattern(size int) []byte {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	return data
}

// testFile writes the pattern under name in a fresh directory.
func testFile(t *testing.T, name string, size int) (string, []byte, *content.Info) {
	t.Helper()
	data := pattern(size)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := content.HashFile(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return path, data, info
}

// startSeeder seeds path until the test ends.
func startSeeder(t *testing.T, url, path string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- seed.Run(ctx, seed.Config{
			Paths: []string{path}, Mediator: url, Transport: testpeer.Transport(t), Logger: quiet(),
			Ready: func(int) { close(ready) },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("seeder: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("seeder ended before it was ready: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("seeder not ready")
	}
}

func runCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestTargetPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "exists.bin")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	info := &content.Info{FileName: "photo.png"}
	evil := &content.Info{FileName: "../../etc/.bashrc"}
	sep := string(os.PathSeparator)
	for _, tc := range []struct {
		output string
		info   *content.Info
		want   string
	}{
		{"", info, "photo.png"},
		{"", evil, "_bashrc"},
		{dir, info, filepath.Join(dir, "photo.png")},
		{dir, evil, filepath.Join(dir, "_bashrc")},
		{dir + sep, info, filepath.Join(dir, "photo.png")},
		{filepath.Join(dir, "new") + sep, info, filepath.Join(dir, "new", "photo.png")},
		{filepath.Join(dir, "plain.bin"), info, filepath.Join(dir, "plain.bin")},
		{file, info, file},
	} {
		got, err := targetPath(tc.output, tc.info)
		if err != nil {
			t.Errorf("targetPath(%q, %q): %v", tc.output, tc.info.FileName, err)
			continue
		}
		if got != tc.want {
			t.Errorf("targetPath(%q, %q) = %q, want %q", tc.output, tc.info.FileName, got, tc.want)
		}
	}
}

func TestHaveBytesShortLastPiece(t *testing.T) {
	_, data, info := testFile(t, "f.bin", fileSize)
	if info.PiecesAmount != 3 || info.PieceSize(2) != 50_000 {
		t.Fatalf("test file has %d pieces, last %d bytes", info.PiecesAmount, info.PieceSize(2))
	}
	dl, err := store.OpenDownload(filepath.Join(t.TempDir(), "out.bin"), info)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	write := func(i int) {
		t.Helper()
		off := int64(i) * info.PiecesLength
		if err := dl.WritePiece(i, data[off:off+int64(info.PieceSize(i))]); err != nil {
			t.Fatal(err)
		}
	}
	check := func(want int64) {
		t.Helper()
		if got := haveBytes(info, dl); got != want {
			t.Fatalf("haveBytes = %d, want %d", got, want)
		}
	}
	check(0)
	write(2) // the short last piece alone
	check(50_000)
	write(0)
	check(250_000)
	write(1)
	check(fileSize)
}

func TestHaveBytesOnePiece(t *testing.T) {
	_, data, info := testFile(t, "f.bin", 1234)
	dl, err := store.OpenDownload(filepath.Join(t.TempDir(), "out.bin"), info)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if got := haveBytes(info, dl); got != 0 {
		t.Fatalf("haveBytes = %d before the piece, want 0", got)
	}
	if err := dl.WritePiece(0, data); err != nil {
		t.Fatal(err)
	}
	if got := haveBytes(info, dl); got != 1234 {
		t.Fatalf("haveBytes = %d, want 1234", got)
	}
}

func TestBadArguments(t *testing.T) {
	_, _, info := testFile(t, "f.bin", 1000)
	other := fmt.Sprintf("%040x", 42)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"short hash", Config{Hash: "abc"}, "not a full hash"},
		{"uppercase hash", Config{Hash: strings.ToUpper(info.FullHash)}, "not a full hash"},
		{"info of another file", Config{Hash: other, Info: info}, info.FullHash},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// No mediator runs: Run must refuse before dialing one.
			tc.cfg.Mediator, tc.cfg.Logger = "ws://127.0.0.1:1", quiet()
			res, err := Run(runCtx(t), tc.cfg)
			if err == nil || res != nil {
				t.Fatalf("Run = %v, %v; want an error", res, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "mediator") {
				t.Fatalf("Run dialed the mediator before checking its arguments: %v", err)
			}
		})
	}
}

func TestNoPeersTimesOut(t *testing.T) {
	url := testpeer.StartMediator(t).URL()
	out := t.TempDir()
	hash := fmt.Sprintf("%040x", 7)
	tr := testpeer.Transport(t)
	base := runtime.NumGoroutine()
	res, err := Run(runCtx(t), Config{
		Hash: hash, Output: out, Mediator: url, Transport: tr,
		Timeout: time.Second, Logger: quiet(),
	})
	if !errors.Is(err, ErrNoPeers) {
		t.Fatalf("Run = %v, %v; want ErrNoPeers", res, err)
	}
	if !strings.Contains(err.Error(), hash) {
		t.Errorf("error %q does not name the hash", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("Run left files behind: %v", ents)
	}
	settleGoroutines(t, base)
}

// settleGoroutines waits until the goroutine count is back to base (the
// mediator ends a connection's goroutines shortly after the client left).
func settleGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before Run:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runGoroutines returns the stacks of goroutines Run started itself, which
// must have ended when it returns.
func runGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "created by github.com/p2pcdn/p2pcdn/internal/fetch.Run") ||
			strings.Contains(g, "created by github.com/p2pcdn/p2pcdn/internal/fetch.(*") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func TestExistingTarget(t *testing.T) {
	url := testpeer.StartMediator(t).URL()
	src, _, info := testFile(t, "movie.bin", fileSize)
	out := t.TempDir()
	target := filepath.Join(out, "movie.bin")
	if err := os.WriteFile(target, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, ErrExists) {
			t.Fatalf("Run: %v; want ErrExists", err)
		}
		got, rerr := os.ReadFile(target)
		if rerr != nil || string(got) != "mine" {
			t.Fatalf("the existing file changed: %q, %v", got, rerr)
		}
		if _, serr := os.Stat(target + store.PartSuffix); serr == nil {
			t.Fatal("a .part was created next to the existing file")
		}
	}
	t.Run("info given", func(t *testing.T) {
		_, err := Run(runCtx(t), Config{
			Hash: info.FullHash, Info: info, Output: out, Mediator: url,
			Transport: testpeer.Transport(t), Timeout: 30 * time.Second, Logger: quiet(),
		})
		check(t, err)
	})
	t.Run("info fetched", func(t *testing.T) {
		startSeeder(t, url, src)
		_, err := Run(runCtx(t), Config{
			Hash: info.FullHash, Output: out, Mediator: url,
			Transport: testpeer.Transport(t), Timeout: 30 * time.Second, Logger: quiet(),
		})
		check(t, err)
	})
}

// TestForeignPartLeftAlone: a remote seeder names its file after one that
// has an unrelated .part here; that .part is neither truncated nor written,
// and Run says why it stopped.
func TestForeignPartLeftAlone(t *testing.T) {
	url := testpeer.StartMediator(t).URL()
	src, _, info := testFile(t, "victim", fileSize)
	startSeeder(t, url, src)
	out := t.TempDir()
	part := filepath.Join(out, "victim"+store.PartSuffix)
	want := []byte("an unrelated partial file")
	if err := os.WriteFile(part, want, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Run(runCtx(t), Config{
		Hash: info.FullHash, Output: out, Mediator: url, Transport: testpeer.Transport(t),
		Timeout: 30 * time.Second, Logger: quiet(),
	})
	if !errors.Is(err, store.ErrNotOurs) {
		t.Fatalf("Run: %v; want store.ErrNotOurs", err)
	}
	if got, err := os.ReadFile(part); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the foreign .part changed: %q, %v", got, err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 1 {
		t.Fatalf("Run wrote beside the foreign .part: %v", ents)
	}
}

// TestDownloadFromSeeder fetches the info dictionary by hash and the file
// from a seeder; progress never goes back and ends at the total.
func TestDownloadFromSeeder(t *testing.T) {
	url := testpeer.StartMediator(t).URL()
	src, data, info := testFile(t, "movie.bin", fileSize)
	startSeeder(t, url, src)

	var (
		mu    sync.Mutex
		steps []Progress
	)
	out := t.TempDir() + string(os.PathSeparator)
	res, err := Run(runCtx(t), Config{
		Hash: info.FullHash, Output: out, Mediator: url, Transport: testpeer.Transport(t),
		Timeout: 30 * time.Second, Logger: quiet(),
		Progress: func(p Progress) {
			mu.Lock()
			steps = append(steps, p)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := runGoroutines(); s != "" {
		t.Fatalf("goroutines Run started are still running:\n%s", s)
	}
	want := filepath.Join(out, "movie.bin")
	if res.Path != want {
		t.Errorf("Path = %q, want %q", res.Path, want)
	}
	got, err := os.ReadFile(want)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded file differs (%d bytes, %v)", len(got), err)
	}
	if _, err := os.Stat(want + store.PartSuffix); err == nil {
		t.Error("the .part file is still there")
	}
	if res.Info == nil || res.Info.FullHash != info.FullHash {
		t.Errorf("Result.Info = %+v", res.Info)
	}
	if res.Peers != 1 || res.Downloaded < fileSize || res.Resumed != 0 {
		t.Errorf("Result = %+v; want 1 peer, >= %d bytes, 0 resumed", res, fileSize)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(steps) == 0 {
		t.Fatal("Progress was never called")
	}
	var prev Progress
	for i, p := range steps {
		if p.Total != 0 && p.Total != fileSize {
			t.Fatalf("step %d: Total %d, want 0 or %d", i, p.Total, fileSize)
		}
		if p.Have < prev.Have || p.Downloaded < prev.Downloaded || p.Total < prev.Total {
			t.Fatalf("progress went back at step %d: %+v after %+v", i, p, prev)
		}
		if p.Have > p.Total {
			t.Fatalf("step %d: Have %d > Total %d", i, p.Have, p.Total)
		}
		prev = p
	}
	if prev.Have != fileSize || prev.Total != fileSize || prev.Info == nil {
		t.Fatalf("last progress %+v, want Have = Total = %d", prev, fileSize)
	}
}

// TestResume: pieces left by an earlier run are kept, not fetched again.
func TestResume(t *testing.T) {
	url := testpeer.StartMediator(t).URL()
	src, data, info := testFile(t, "movie.bin", fileSize)
	target := filepath.Join(t.TempDir(), "saved.bin")
	dl, err := store.OpenDownload(target, info)
	if err != nil {
		t.Fatal(err)
	}
	if err := dl.WritePiece(0, data[:info.PiecesLength]); err != nil {
		t.Fatal(err)
	}
	dl.Close()
	startSeeder(t, url, src)

	var first *Progress
	res, err := Run(runCtx(t), Config{
		Hash: info.FullHash, Info: info, Output: target, Mediator: url, Transport: testpeer.Transport(t),
		Timeout: 30 * time.Second, Logger: quiet(),
		Progress: func(p Progress) {
			if first == nil {
				first = &p
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != target || res.Resumed != 1 {
		t.Errorf("Result = %+v; want Path %s, 1 piece resumed", res, target)
	}
	if max := fileSize - info.PiecesLength; res.Downloaded > max+info.PiecesLength/2 {
		t.Errorf("downloaded %d bytes, the missing pieces hold %d", res.Downloaded, max)
	}
	if first == nil || first.Have < info.PiecesLength {
		t.Errorf("first progress %+v; want the resumed piece counted", first)
	}
	got, err := os.ReadFile(target)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("resumed file differs (%d bytes, %v)", len(got), err)
	}
}

// emptyReader is a peer that has none of the file's pieces.
type emptyReader struct{}

func (emptyReader) Has(int) bool                     { return false }
func (emptyReader) ReadBlock(int, int, []byte) error { return errors.New("no pieces here") }

// servePeer announces info through a peer of its own whose pieces come from
// r, until the test ends; it returns the peer's id.
func servePeer(t *testing.T, url string, info *content.Info, r swarm.PieceReader) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	client := testpeer.Dial(t, url, "")
	ih, _ := wire.DecodeID(info.FullHash)
	pid, _ := wire.DecodeID(client.PeerID())
	tor, err := swarm.New(swarm.Config{
		InfoHash: ih, PeerID: pid, Info: info, Logger: quiet(),
		Open: func(*content.Info) (swarm.PieceReader, error) { return r, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tor.Close() })
	link := peering.Join(context.Background(), peering.Config{Hash: info.FullHash, Client: client, Transport: testpeer.Transport(t), Torrent: tor, Logger: quiet()})
	t.Cleanup(link.Close)
	if err := client.Announce(ctx, info.FullHash); err != nil {
		t.Fatal(err)
	}
	return client.PeerID()
}

// TestStalled: a peer that connects but has nothing makes Run give up with
// ErrStalled, not ErrNoPeers.
func TestStalled(t *testing.T) {
	url := testpeer.StartMediator(t).URL()
	_, _, info := testFile(t, "movie.bin", fileSize)
	servePeer(t, url, info, emptyReader{})

	out := t.TempDir()
	_, err := Run(runCtx(t), Config{
		Hash: info.FullHash, Info: info, Output: out, Mediator: url, Transport: testpeer.Transport(t),
		Timeout: 2 * time.Second, Logger: quiet(),
	})
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("Run: %v; want ErrStalled", err)
	}
	// The partial download stays for a later resume; no final file appears.
	if _, err := os.Stat(filepath.Join(out, "movie.bin")); err == nil {
		t.Fatal("a final file appeared for a stalled download")
	}
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

// TestLyingSeederBanned: with a lying seeder and an honest one, the file
// still arrives intact.
func TestLyingSeederBanned(t *testing.T) {
	url := testpeer.StartMediator(t).URL()
	src, data, info := testFile(t, "movie.bin", fileSize)
	servePeer(t, url, info, corruptReader{})
	startSeeder(t, url, src)

	out := t.TempDir()
	res, err := Run(runCtx(t), Config{
		Hash: info.FullHash, Info: info, Output: out, Mediator: url, Transport: testpeer.Transport(t),
		Timeout: 30 * time.Second, Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(res.Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded file differs (%d bytes, %v)", len(got), err)
	}
}

// FuzzTargetPath: whatever name a peer sends, a directory output keeps the
// file directly inside that directory.
func FuzzTargetPath(f *testing.F) {
	for _, s := range []string{"a.png", "../../etc/passwd", "..", ".", "", "a/b\\c", "\x00", "..\\..\\x", "/abs", "~"} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, name string) {
		for _, out := range []string{dir, dir + string(os.PathSeparator)} {
			p, err := targetPath(out, &content.Info{FileName: name})
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Dir(p) != dir {
				t.Fatalf("name %q with output %q goes to %q, outside the directory", name, out, p)
			}
			if base := filepath.Base(p); base == "." || base == ".." || strings.HasPrefix(base, ".") {
				t.Fatalf("name %q gives %q", name, base)
			}
		}
		p, err := targetPath("", &content.Info{FileName: name})
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(p) != "." || !filepath.IsLocal(p) {
			t.Fatalf("name %q with no output gives %q, not a local name", name, p)
		}
	})
}

// TestAlreadyThere: a target that holds the very file (its content hashes
// to the full hash) is reported as already there and left untouched, with
// the info given (no network needed) and fetched from a peer.
func TestAlreadyThere(t *testing.T) {
	url := testpeer.StartMediator(t).URL()
	src, data, info := testFile(t, "movie.bin", fileSize)
	out := t.TempDir()
	target := filepath.Join(out, "movie.bin")
	if err := os.WriteFile(target, data, 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(target)
	check := func(t *testing.T, res *Result, err error) {
		t.Helper()
		if err != nil || res == nil || !res.AlreadyThere || res.Path != target || res.Downloaded != 0 {
			t.Fatalf("Run = %+v, %v; want already there at %s", res, err, target)
		}
		after, _ := os.Stat(target)
		if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
			t.Fatal("the file was replaced or rewritten")
		}
		if ents, _ := os.ReadDir(out); len(ents) != 1 {
			t.Fatalf("Run left files beside it: %v", ents)
		}
	}
	t.Run("info given, no mediator needed", func(t *testing.T) {
		s, err := Dial(runCtx(t), Config{Mediator: url, Transport: testpeer.Transport(t), Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		res, err := s.Get(runCtx(t), Config{Hash: info.FullHash, Info: info, Output: out, Timeout: time.Second})
		check(t, res, err)
	})
	t.Run("info fetched", func(t *testing.T) {
		startSeeder(t, url, src)
		res, err := Run(runCtx(t), Config{
			Hash: info.FullHash, Output: out, Mediator: url,
			Transport: testpeer.Transport(t), Timeout: 30 * time.Second, Logger: quiet(),
		})
		check(t, res, err)
	})
}

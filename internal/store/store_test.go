package store

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
)

// testFile returns n pseudo-random bytes (mixed ASCII and high bytes) and
// their info dictionary.
func testFile(t *testing.T, n int, name string) ([]byte, *content.Info) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(n), 7))
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	info, err := content.HashReaderAt(context.Background(), bytes.NewReader(data), int64(n), content.PieceLength, nil)
	if err != nil {
		t.Fatal(err)
	}
	info.FileName = name
	return data, info
}

func piece(data []byte, info *content.Info, i int) []byte {
	start := i * int(info.PiecesLength)
	return data[start : start+info.PieceSize(i)]
}

func TestSeedFileServes(t *testing.T) {
	data, info := testFile(t, 3*content.PieceLength+1234, "a.bin")
	path := filepath.Join(t.TempDir(), "a.bin")
	os.WriteFile(path, data, 0o644)
	s, err := OpenSeed(path, info)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, 16384)
	if err := s.ReadBlock(1, 100, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, data[content.PieceLength+100:content.PieceLength+100+16384]) {
		t.Fatal("wrong block content")
	}
	// The prototype asks for a whole piece even for the short last one; the
	// caller sizes the block with PieceSize.
	last := make([]byte, info.PieceSize(3))
	if err := s.ReadBlock(3, 0, last); err != nil || !bytes.Equal(last, data[3*content.PieceLength:]) {
		t.Fatalf("last piece: %v", err)
	}
	for _, c := range []struct{ piece, begin, n int }{
		{-1, 0, 1}, {4, 0, 1}, {0, -1, 1}, {0, content.PieceLength - 10, 11}, {3, 0, 1235}, {0, content.PieceLength + 1, 0},
	} {
		if err := s.ReadBlock(c.piece, c.begin, make([]byte, c.n)); !errors.Is(err, ErrRange) {
			t.Errorf("ReadBlock(%d,%d,%d): %v, want ErrRange", c.piece, c.begin, c.n, err)
		}
	}
	if !s.Has(0) || !s.Has(3) || s.Has(4) || s.Has(-1) {
		t.Fatal("Has wrong")
	}
}

func TestSeedFileRefusesWrongSize(t *testing.T) {
	data, info := testFile(t, 1000, "a.bin")
	path := filepath.Join(t.TempDir(), "a.bin")
	os.WriteFile(path, data[:999], 0o644)
	if _, err := OpenSeed(path, info); !errors.Is(err, ErrChanged) {
		t.Fatalf("err %v, want ErrChanged", err)
	}
	os.WriteFile(path, data, 0o644)
	if _, err := OpenSeedSince(path, info, time.Unix(1, 0)); !errors.Is(err, ErrChanged) {
		t.Fatalf("err %v, want ErrChanged for an older hash", err)
	}
}

func TestSeedFileDetectsChange(t *testing.T) {
	for _, mode := range []string{"rewrite same size", "truncate", "append"} {
		t.Run(mode, func(t *testing.T) {
			data, info := testFile(t, 2*content.PieceLength, "a.bin")
			path := filepath.Join(t.TempDir(), "a.bin")
			os.WriteFile(path, data, 0o644)
			old := time.Now().Add(-time.Hour)
			os.Chtimes(path, old, old)
			s, err := OpenSeed(path, info)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			buf := make([]byte, 100)
			if err := s.ReadBlock(0, 0, buf); err != nil {
				t.Fatal(err)
			}
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			switch mode {
			case "rewrite same size":
				f.WriteAt([]byte("changed"), 10)
			case "truncate":
				f.Truncate(50)
			case "append":
				f.WriteAt([]byte("x"), int64(len(data)))
			}
			f.Close()
			if err := s.ReadBlock(0, 0, buf); !errors.Is(err, ErrChanged) {
				t.Fatalf("after change: %v, want ErrChanged", err)
			}
			if s.Has(0) || s.Has(1) {
				t.Fatal("Has must be false once the file changed")
			}
		})
	}
}

func TestDownloadAtomicFinish(t *testing.T) {
	data, info := testFile(t, 7*content.PieceLength+5, "d.bin")
	final := filepath.Join(t.TempDir(), "d.bin")
	d, err := OpenDownload(final, info)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Missing() != 8 {
		t.Fatalf("missing %d", d.Missing())
	}
	bad := bytes.Clone(piece(data, info, 2))
	bad[7] ^= 1
	if err := d.WritePiece(2, bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt piece: %v", err)
	}
	if err := d.WritePiece(2, piece(data, info, 2)[1:]); !errors.Is(err, ErrRange) {
		t.Fatalf("short piece: %v", err)
	}
	if err := d.WritePiece(8, []byte{1}); !errors.Is(err, ErrRange) {
		t.Fatalf("piece out of range: %v", err)
	}
	if err := d.ReadBlock(2, 0, make([]byte, 10)); !errors.Is(err, ErrMissing) {
		t.Fatalf("read of missing piece: %v", err)
	}
	// All but piece 5, concurrently and out of order.
	var wg sync.WaitGroup
	for _, i := range []int{7, 3, 0, 6, 1, 4, 2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.WritePiece(i, piece(data, info, i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := d.Finish(); err == nil {
		t.Fatal("Finish succeeded with a piece missing")
	}
	if _, err := os.Stat(final); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("final file exists before the download is complete: %v", err)
	}
	buf := make([]byte, 1000)
	if err := d.ReadBlock(3, 500, buf); err != nil || !bytes.Equal(buf, piece(data, info, 3)[500:1500]) {
		t.Fatalf("re-sharing a verified piece: %v", err)
	}
	if err := d.WritePiece(5, piece(data, info, 5)); err != nil {
		t.Fatal(err)
	}
	if err := d.WritePiece(5, piece(data, info, 5)); err != nil {
		t.Fatalf("rewriting a stored piece: %v", err)
	}
	if d.Missing() != 0 {
		t.Fatalf("missing %d", d.Missing())
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(final)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("final file wrong: %v", err)
	}
	for _, p := range []string{final + PartSuffix, final + StateSuffix} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s left behind: %v", p, err)
		}
	}
	// Still serving after Finish.
	if err := d.ReadBlock(7, 0, buf[:5]); err != nil || !bytes.Equal(buf[:5], data[7*content.PieceLength:]) {
		t.Fatalf("read after finish: %v", err)
	}
}

func TestDownloadResume(t *testing.T) {
	data, info := testFile(t, 6*content.PieceLength+77, "r.bin")
	final := filepath.Join(t.TempDir(), "r.bin")
	d, err := OpenDownload(final, info)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 2, 4, 6} {
		if err := d.WritePiece(i, piece(data, info, i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := OpenDownload(final, info); err == nil {
		t.Fatal("a second download of the same .part was allowed while the first is open")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Plain resume: every claimed piece is re-read and kept.
	var reads atomic.Int32
	d = reopen(t, final, info, &reads)
	if got := have(d, info); got != "1110101" || reads.Load() != 5 {
		t.Fatalf("resume: have %s after %d reads, want 1110101 after 5", got, reads.Load())
	}
	d.Close()

	// Corrupt piece 1 in the .part: it is forgotten, the others are kept.
	f, _ := os.OpenFile(final+PartSuffix, os.O_RDWR, 0)
	f.WriteAt([]byte{^data[content.PieceLength+9]}, content.PieceLength+9)
	f.Close()
	d = reopen(t, final, info, nil)
	if got := have(d, info); got != "1010101" {
		t.Fatalf("after corrupting piece 1: have %s, want 1010101", got)
	}
	if err := d.WritePiece(1, piece(data, info, 1)); err != nil {
		t.Fatal(err)
	}
	d.Close()

	// Truncate the .part inside piece 4: pieces 4 and 6 are lost, then
	// re-fetched.
	os.Truncate(final+PartSuffix, 4*content.PieceLength+10)
	d = reopen(t, final, info, nil)
	if got := have(d, info); got != "1110000" {
		t.Fatalf("after truncating: have %s, want 1110000", got)
	}
	for _, i := range []int{3, 4, 5, 6} {
		if err := d.WritePiece(i, piece(data, info, i)); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()

	// Damaged state file: nothing is trusted (and nothing is re-read).
	st, _ := os.ReadFile(final + StateSuffix)
	st[len(st)-10] ^= 0x40
	os.WriteFile(final+StateSuffix, st, 0o644)
	reads.Store(0)
	d = reopen(t, final, info, &reads)
	if got := have(d, info); got != "0000000" || reads.Load() != 0 {
		t.Fatalf("after damaging the state: have %s, %d reads", got, reads.Load())
	}
	for i := range info.PiecesAmount {
		d.WritePiece(i, piece(data, info, i))
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// The original completes from its state without any refetch.
	d = reopen(t, final, info, nil)
	if err := d.Finish(); err != nil {
		t.Fatalf("finish after resume: %v", err)
	}
	d.Close()
	if got, _ := os.ReadFile(final); !bytes.Equal(got, data) {
		t.Fatal("final content wrong")
	}
}

// A .part holding another content's unfinished download (same name, same
// sizes) is neither trusted nor truncated: the new download refuses it.
func TestDownloadRefusesPartOfOtherContent(t *testing.T) {
	data, info := testFile(t, 3*content.PieceLength, "r.bin")
	final := filepath.Join(t.TempDir(), "r.bin")
	d, err := OpenDownload(final, info)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		d.WritePiece(i, piece(data, info, i))
	}
	d.Close()
	// Same sizes, different content: same header shape, other full hash.
	other := bytes.Clone(data)
	other[5] ^= 1
	otherInfo, _ := content.HashReaderAt(context.Background(), bytes.NewReader(other), int64(len(other)), content.PieceLength, nil)
	otherInfo.FileName = "r.bin"
	var reads atomic.Int32
	_, err = openDownloadHook(final, otherInfo, func(int) { reads.Add(1) })
	if !errors.Is(err, ErrNotOurs) || !strings.Contains(err.Error(), info.FullHash) {
		t.Fatalf("open over other content's .part: %v; want ErrNotOurs naming %s", err, info.FullHash)
	}
	if reads.Load() != 0 {
		t.Fatalf("state of other content trusted: %d reads", reads.Load())
	}
	// Its owner still resumes it whole.
	d = reopen(t, final, info, nil)
	defer d.Close()
	if d.Missing() != 0 {
		t.Fatalf("the first download lost pieces: %d missing", d.Missing())
	}
}

func reopen(t *testing.T, final string, info *content.Info, reads *atomic.Int32) *Download {
	t.Helper()
	dl, err := openDownloadHook(final, info, func(int) {
		if reads != nil {
			reads.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dl
}

func have(d *Download, info *content.Info) string {
	s := ""
	for i := range info.PiecesAmount {
		if d.Has(i) {
			s += "1"
		} else {
			s += "0"
		}
	}
	return s
}

// The longest name SafeName produces must leave room for the download's
// suffixes on a file system with 255-byte names.
func TestDownloadLongestSafeName(t *testing.T) {
	name := content.SafeName(string(bytes.Repeat([]byte("n"), 1000)))
	data, info := testFile(t, 1000, name)
	final := filepath.Join(t.TempDir(), name)
	d, err := OpenDownload(final, info)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WritePiece(0, data); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = OpenDownload(final, info)
	if err != nil || d.Missing() != 0 {
		t.Fatalf("resume: %v", err)
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	d.Close()
}

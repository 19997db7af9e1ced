package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/content"
)

// victim is a file the download must never write to.
func victim(t *testing.T) (path string, data []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "victim.txt")
	data = []byte("precious data that must survive\n")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func unchanged(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s was changed: %q, %v", path, got, err)
	}
}

// A symbolic link planted at NAME.part must not be followed: before the fix,
// the download truncated the link's target to the file's size and wrote
// pieces into it.
func TestDownloadDoesNotFollowLinkedPart(t *testing.T) {
	target, want := victim(t)
	data, info := testFile(t, 2*content.PieceLength, "d.bin")
	final := filepath.Join(t.TempDir(), "d.bin")
	if err := os.Symlink(target, final+PartSuffix); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDownload(final, info)
	if err == nil {
		d.WritePiece(0, piece(data, info, 0))
		d.Close()
		t.Fatal("a download opened through a symbolic link")
	}
	if !errors.Is(err, ErrNotOurs) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("open: %v; want ErrNotOurs naming the link", err)
	}
	unchanged(t, target, want)
}

// The state file and its temporary file are written through neither a link
// planted at the temporary name (before the fix os.WriteFile overwrote the
// link's target with the state) nor one at the state's own name.
func TestDownloadDoesNotFollowLinkedState(t *testing.T) {
	target, want := victim(t)
	data, info := testFile(t, 2*content.PieceLength, "s.bin")
	final := filepath.Join(t.TempDir(), "s.bin")
	if err := os.Symlink(target, final+StateSuffix+".tmp"); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDownload(final, info)
	if err != nil {
		t.Fatal(err)
	}
	for i := range info.PiecesAmount {
		if err := d.WritePiece(i, piece(data, info, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	unchanged(t, target, want)
	if fi, err := os.Lstat(final + StateSuffix); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("state file: %v, %v", fi, err)
	}

	// A link at the state path of a fresh download is not ours: refused.
	final2 := filepath.Join(t.TempDir(), "s.bin")
	if err := os.Symlink(target, final2+StateSuffix); err != nil {
		t.Fatal(err)
	}
	if d, err := OpenDownload(final2, info); !errors.Is(err, ErrNotOurs) {
		if err == nil {
			d.Close()
		}
		t.Fatalf("open with a linked state: %v; want ErrNotOurs", err)
	}
	unchanged(t, target, want)
	if _, err := os.Lstat(final2 + PartSuffix); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a .part was created beside a foreign state: %v", err)
	}
}

// A remote seeder chooses the file name. Naming its file "victim" must not
// truncate an unrelated victim.part that has no state of ours beside it.
func TestDownloadRefusesForeignPart(t *testing.T) {
	data, info := testFile(t, 2*content.PieceLength, "victim")
	dir := t.TempDir()
	final := filepath.Join(dir, "victim")
	want := []byte("someone else's partial file, not ours")
	if err := os.WriteFile(final+PartSuffix, want, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDownload(final, info)
	if err == nil {
		d.WritePiece(0, piece(data, info, 0))
		d.Close()
	}
	if !errors.Is(err, ErrNotOurs) {
		t.Fatalf("open over a foreign .part: %v; want ErrNotOurs", err)
	}
	unchanged(t, final+PartSuffix, want)
	if _, err := os.Lstat(final + StateSuffix); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a state file was written beside the foreign .part: %v", err)
	}
}

// Finish must not replace a file that appeared at the final path while the
// download ran (before the fix it renamed over it).
func TestFinishNeverReplaces(t *testing.T) {
	data, info := testFile(t, content.PieceLength+10, "f.bin")
	final := filepath.Join(t.TempDir(), "f.bin")
	d, err := OpenDownload(final, info)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i := range info.PiecesAmount {
		if err := d.WritePiece(i, piece(data, info, i)); err != nil {
			t.Fatal(err)
		}
	}
	want := []byte("written by someone else meanwhile")
	if err := os.WriteFile(final, want, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Finish(); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Finish over an existing file: %v; want fs.ErrExist", err)
	}
	unchanged(t, final, want)
	got, err := os.ReadFile(final + PartSuffix)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the complete .part was not kept: %v", err)
	}

	// A link that appeared at the final path is not replaced either.
	target, tw := victim(t)
	os.Remove(final)
	if err := os.Symlink(target, final); err != nil {
		t.Fatal(err)
	}
	if err := d.Finish(); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Finish over a link: %v; want fs.ErrExist", err)
	}
	unchanged(t, target, tw)
	os.Remove(final)
	if err := d.Finish(); err != nil {
		t.Fatalf("Finish once the path is free: %v", err)
	}
	if got, _ := os.ReadFile(final); !bytes.Equal(got, data) {
		t.Fatal("final content wrong")
	}
}

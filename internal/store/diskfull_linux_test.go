//go:build linux

package store

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/content"
)

// envFullDir tells the re-executed test binary where its tiny tmpfs is.
const envFullDir = "P2PCDN_TEST_FULL_DIR"

// A state write that hits a full disk must leave no empty .part.state.tmp
// behind and keep the previous state valid. The disk is a 1 MiB tmpfs mounted
// in a private mount namespace (unshare --mount, as root), in which this test
// binary runs the check itself.
func TestDiskFullLeavesNoTempState(t *testing.T) {
	if dir := os.Getenv(envFullDir); dir != "" {
		diskFullCheck(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to mount a tiny tmpfs inside unshare --mount")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("skipped: needs unshare(1) to mount a tiny tmpfs in a private mount namespace")
	}
	dir := t.TempDir()
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=1m p2pcdn-test "$1" || exit 77; exec "$2" -test.run='^TestDiskFullLeavesNoTempState$' -test.v`,
		"sh", dir, os.Args[0])
	cmd.Env = append(os.Environ(), envFullDir+"="+dir)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 77 {
		t.Skipf("skipped: cannot mount a tmpfs here: %s", out)
	}
	if err != nil {
		t.Fatalf("disk-full check: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "disk full reached") {
		t.Fatalf("the disk-full check did not run:\n%s", out)
	}
}

func diskFullCheck(t *testing.T, dir string) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Blocks*uint64(st.Bsize) > 2<<20 {
		t.Fatalf("%s is not the tiny tmpfs (%v)", dir, err)
	}
	data, info := testFile(t, 2*content.PieceLength, "full.bin")
	final := filepath.Join(dir, "full.bin")
	d, err := OpenDownload(final, info)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.WritePiece(0, piece(data, info, 0)); err != nil {
		t.Fatal(err)
	}
	// Fill what is left.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := filler.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	filler.Close()
	t.Log("disk full reached")
	d.mu.Lock()
	d.gen++ // a change to save, whatever the throttle did
	d.mu.Unlock()
	if err := d.saveState(true); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("state write on a full disk: %v; want ENOSPC", err)
	}
	if _, err := os.Lstat(final + StateSuffix + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a temporary state file was left behind: %v", err)
	}
	if kind, _, _ := d.readState(); kind != stateMatch {
		t.Fatalf("the previous state is no longer valid (kind %d)", kind)
	}
	// With room again, the download goes on and resumes.
	os.Remove(filepath.Join(dir, "filler"))
	if err := d.WritePiece(1, piece(data, info, 1)); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = reopen(t, final, info, nil)
	if d.Missing() != 0 {
		t.Fatalf("after the disk was full: %d pieces missing on resume", d.Missing())
	}
}

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestGetManyOverOneConnection: `p2pcdn get` of several hashes from one `p2pcdn seed` process: both are
// peers of ours, so they share one peer connection with a data channel per file (docs/extensions.md).
// Counted in both processes' --verbose logs (msg="peer connection open"; the timeline has lines of its own).
func TestGetManyOverOneConnection(t *testing.T) {
	m := startMediator(t, "127.0.0.1:0")
	src := t.TempDir()
	const n = 6
	for i := range n {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("f%d.bin", i)), int64(150_000+i*70_000), uint64(40+i))
	}
	s := startSeeder(t, m, []string{"--verbose"}, src)
	var hashes []string
	for _, in := range s.infos {
		hashes = append(hashes, in.FullHash)
	}
	out := t.TempDir()
	p := start(t, "get", out, append([]string{"get", "--verbose", "--ice-loopback", "--mediator", m.url(), "-o", out}, hashes...)...)
	if code := p.Wait(runTimeout); code != 0 {
		t.Fatalf("get exited %d; stderr:\n%s", code, p.Stderr())
	}
	for _, in := range s.infos {
		sameFile(t, filepath.Join(src, in.FileName), filepath.Join(out, in.FileName))
	}
	if c := strings.Count(p.Stderr(), `msg="peer connection open"`); c != 1 {
		t.Errorf("get opened %d peer connections for %d files from one seeder, want 1", c, n)
	}
	if c := strings.Count(p.Stderr(), `msg="channel open"`); c != n {
		t.Errorf("get logged %d channels, want one per file (%d)", c, n)
	}
	if c := strings.Count(s.Stderr(), `msg="peer connection open"`); c != 1 {
		t.Errorf("the seeder opened %d peer connections, want 1", c)
	}
}

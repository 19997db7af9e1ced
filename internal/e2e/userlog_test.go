package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestSeedWarnsInOneStyle: what seed says at its default verbosity while its
// mediator is not up yet, and once it is, reads like the rest of its output
// ("p2pcdn: …", the cause last), not as a developer's log line with time=
// and level= fields between the user's "p2pcdn:" lines.
func TestSeedWarnsInOneStyle(t *testing.T) {
	t.Parallel()
	addr := deadAddr(t)
	src := filepath.Join(t.TempDir(), "a.bin")
	writeRandom(t, src, 2000, 1200)
	s := start(t, "seed", "", "seed", "--no-cache", "--ice-loopback", "--mediator", "ws://"+addr, src)
	s.WaitOutput(regexp.MustCompile(`retrying`), startTimeout)
	p := start(t, "mediator", "", "mediator", "--listen", addr, "--udp-listen", "127.0.0.1:0")
	p.WaitOutput(listeningRE, startTimeout)
	s.WaitOutput(seedingRE, startTimeout)
	if err := s.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := s.Wait(runTimeout); code != 0 {
		t.Fatalf("seed exited %d; stderr:\n%s", code, s.Stderr())
	}
	retry := regexp.MustCompile(`^p2pcdn: mediator not reachable yet, retrying \(.*in=[0-9.]+m?s.*\): cannot connect to the mediator at ws://` +
		regexp.QuoteMeta(addr) + `: connection refused$`)
	sawRetry := false
	for _, line := range strings.Split(strings.TrimSpace(s.Stderr()), "\n") {
		if strings.Contains(line, "level=") || strings.Contains(line, "time=") {
			t.Errorf("a developer's log line at the default verbosity: %q", line)
		}
		sawRetry = sawRetry || retry.MatchString(line)
	}
	if !sawRetry {
		t.Errorf("no retry line of the form %q; stderr:\n%s", retry, s.Stderr())
	}
}

// TestNothingToSeedSaysWhyOnce: when no path can be seeded, each reason is
// printed once (as its warning), and the failure line does not repeat them.
func TestNothingToSeedSaysWhyOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.bin")
	empty := filepath.Join(dir, "empty.bin")
	writeRandom(t, empty, 0, 1)
	p := start(t, "seed", "", "seed", "--no-cache", "--mediator", "ws://"+deadAddr(t), missing, empty)
	if code := p.Wait(runTimeout); code != 1 {
		t.Fatalf("seed of nothing seedable exited %d; stderr:\n%s", code, p.Stderr())
	}
	stderr := p.Stderr()
	for _, why := range []string{missing + ": no such file", empty + ": empty file"} {
		if n := strings.Count(stderr, why); n != 1 {
			t.Errorf("%q said %d times, want once; stderr:\n%s", why, n, stderr)
		}
	}
	if !strings.Contains(stderr, "p2pcdn: nothing to seed") {
		t.Errorf("no failure line; stderr:\n%s", stderr)
	}
}

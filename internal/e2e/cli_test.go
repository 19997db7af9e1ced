package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestVersion: `p2pcdn --version` and `p2pcdn version` name the build, with
// the checkout's revision when the binary was built from a git checkout.
func TestVersion(t *testing.T) {
	t.Parallel()
	var outs []string
	for _, args := range [][]string{{"--version"}, {"version"}} {
		p := start(t, "version", "", args...)
		if code := p.Wait(startTimeout); code != 0 {
			t.Fatalf("p2pcdn %s exited %d; stderr:\n%s", args[0], code, p.Stderr())
		}
		out := strings.TrimSpace(p.Stdout())
		if !regexp.MustCompile(`^p2pcdn version \S+.*, go1\.\d+`).MatchString(out) {
			t.Errorf("p2pcdn %s printed %q, want the module version and the Go version", args[0], out)
		}
		outs = append(outs, out)
	}
	// Builds with -buildvcs=false (some machines set it in GOFLAGS) carry no
	// revision; when the binary has one, version must print it.
	info, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	if m := regexp.MustCompile(`vcs\.revision=(\w{12})`).FindSubmatch(info); m != nil {
		// A pseudo-version (v0.0.0-…-<revision>) names it already.
		if want := string(m[1]); !strings.Contains(outs[1], want) {
			t.Errorf("p2pcdn version printed %q, want it to contain %q", outs[1], want)
		}
	} else {
		t.Logf("the binary carries no VCS revision (built with -buildvcs=false?); checked the rest only")
	}
}

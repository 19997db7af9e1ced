package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/testcert"
	"github.com/p2pcdn/p2pcdn/internal/testenv"
)

var dhtRunningRE = regexp.MustCompile(`msg="DHT node running"`)

// TestMediatorStopsCleanly: SIGTERM (and SIGINT) stop a mediator with exit 0
// in every configuration of its UDP port. With STUN on (the default), the DHT
// and STUN share the port through a demultiplexer, whose closing the DHT's
// side under it used to make the DHT library panic on shutdown, every time
// with --turn.
func TestMediatorStopsCleanly(t *testing.T) {
	t.Parallel()
	cert, key := testcert.Write(t, t.TempDir(), "localhost", "127.0.0.1")
	for _, c := range []struct {
		name string
		args []string
		sig  syscall.Signal
	}{
		{"default", nil, syscall.SIGTERM},
		{"no-stun", []string{"--no-stun"}, syscall.SIGTERM},
		{"turn", []string{"--turn"}, syscall.SIGTERM},
		{"turn-tls", []string{"--turn", "--tls-cert", cert, "--tls-key", key}, syscall.SIGINT},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for range 3 {
				args := append([]string{"mediator", "--listen", "127.0.0.1:0", "--udp-listen", "127.0.0.1:0"}, c.args...)
				p := start(t, "mediator", "", args...)
				p.WaitOutput(listeningRE, startTimeout)
				p.WaitOutput(dhtRunningRE, startTimeout)
				if err := p.Signal(c.sig); err != nil {
					t.Fatal(err)
				}
				if code := p.Wait(runTimeout); code != 0 || strings.Contains(p.Stderr(), "panic") {
					t.Fatalf("mediator %v exited %d on %v; stderr:\n%s", c.args, code, c.sig, p.Stderr())
				}
			}
		})
	}
}

// TestSeedEmbeddedMediatorStopsQuietly: Ctrl-C on a seed that runs its own
// mediator (no --mediator, the README's main job) stops the seeding first and
// the mediator after it. Stopping both at once dropped the seeder's own
// connection under it: a "lost connection to the mediator, reconnecting"
// warning on every Ctrl-C, and a wait for the goodbye that could not be sent.
// The embedded mediator takes the fixed port 127.0.0.1:8888, so the seeder
// runs in a network namespace of its own (root only).
func TestSeedEmbeddedMediatorStopsQuietly(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace of its own: the embedded mediator's port 8888 is fixed")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skipf("needs unshare(1) for a network namespace of its own: %v", err)
	}
	src := filepath.Join(t.TempDir(), "a.bin")
	writeRandom(t, src, 3000, 1100)
	script := "ip link set lo up && exec " + bin + " seed --no-cache --ice-loopback " + src
	// The two stops raced, and the seeder lost about one stop in ten (seen by
	// hand; this test did not catch it in three runs before the fix): ten
	// seeders at once, each in its namespace, give it more chances.
	seeders := make([]*proc, 10)
	for i := range seeders {
		seeders[i] = testenv.StartProc(t, "seed", unshare, "", "--net", "--", "sh", "-c", script)
	}
	for _, s := range seeders {
		s.WaitOutput(seedingRE, startTimeout)
	}
	for _, s := range seeders {
		if err := s.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range seeders {
		if code := s.Wait(runTimeout); code != 0 || strings.Contains(s.Stderr(), "lost connection") ||
			strings.Contains(s.Stderr(), "level=") {
			t.Errorf("seed with its own mediator exited %d on Ctrl-C; stderr:\n%s", code, s.Stderr())
		}
	}
}

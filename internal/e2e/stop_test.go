package e2e

import (
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/testcert"
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

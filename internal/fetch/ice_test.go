package fetch

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/mediator"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/seed"
	"github.com/p2pcdn/p2pcdn/internal/testpeer"
)

// turnRelay is a TURN server on loopback that remembers who allocated.
type turnRelay struct {
	addr  string
	mu    sync.Mutex
	users map[string]bool
}

const turnPassword = "relay-secret"

func startTURN(t *testing.T) *turnRelay {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &turnRelay{addr: pc.LocalAddr().String(), users: map[string]bool{}}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: "p2pcdn-test",
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			r.mu.Lock()
			r.users[ra.Username] = true
			r.mu.Unlock()
			return ra.Username, turn.GenerateAuthKey(ra.Username, ra.Realm, turnPassword), true
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return r
}

// saw reports whether a TURN user name for peerID authenticated.
func (r *turnRelay) saw(peerID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for u := range r.users {
		if strings.HasSuffix(u, ":"+peerID) {
			return true
		}
	}
	return false
}

// relayProvider hands every peer the test's TURN server, as a mediator
// started with its STUN/TURN server does.
type relayProvider struct{ relay *turnRelay }

func (p relayProvider) ICEServers(peerID, _ string) ([]mediation.ICEServer, time.Time) {
	exp := time.Now().Add(time.Hour)
	return []mediation.ICEServer{{
		URLs:       []string{"turn:" + p.relay.addr + "?transport=udp"},
		Username:   fmt.Sprintf("%d:%s", exp.Unix(), peerID),
		Credential: turnPassword,
	}}, exp
}

// TestMediatorICEServersUsed: with no ICE server configured on either
// side, seed and get use the TURN server their mediator hands out (each
// allocates on it with its own credentials), and the file arrives.
func TestMediatorICEServersUsed(t *testing.T) {
	relay := startTURN(t)
	url := testpeer.Serve(t, &mediator.Server{Logger: quiet(), ICE: relayProvider{relay}}).URL()
	src, data, info := testFile(t, "relayed.bin", fileSize)
	lo := rtc.Config{Loopback: true, Logger: quiet()} // no ICEServers: only the mediator's

	const seederID = "00000000000000000000000000000000000000c1"
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- seed.Run(ctx, seed.Config{Paths: []string{src}, Mediator: url, RTC: lo, PeerID: seederID, Logger: quiet(),
			Ready: func(int) { close(ready) }})
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
		t.Fatalf("seeder ended: %v", err)
	}

	const getterID = "00000000000000000000000000000000000000c2"
	res, err := Run(runCtx(t), Config{
		Hash: info.FullHash, Output: t.TempDir(), Mediator: url, RTC: lo, PeerID: getterID,
		Timeout: 30 * time.Second, Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(res.Path); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded file differs: %v", err)
	}
	if !relay.saw(getterID) {
		t.Error("get did not use the mediator's TURN server")
	}
	// The seeder gathers when it answers the getter's offer.
	if !relay.saw(seederID) {
		t.Error("seed did not use the mediator's TURN server")
	}
}

package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
	"github.com/p2pcdn/p2pcdn/internal/testcert"
)

// TestMediatorTURNFromTheCLI: `p2pcdn mediator --turn --tls-cert ...` hands
// its peers STUN, TURN and TURNS in established, and the TURN credentials
// work on the relay: what a peer with no ICE flags relies on.
func TestMediatorTURNFromTheCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := testcert.Write(t, dir, "localhost")
	p := start(t, "mediator", "", "mediator", "--listen", "127.0.0.1:0", "--udp-listen", "127.0.0.1:0", "--no-dht",
		"--turn", "--turn-allow-loopback", "--tls-cert", certFile, "--tls-key", keyFile)
	addr := p.WaitOutput(listeningRE, startTimeout)[1]
	udp := p.WaitOutput(regexp.MustCompile(`STUN serving" udp=(\S+)`), startTimeout)[1]
	_, port, _ := net.SplitHostPort(addr)
	_, udpPort, _ := net.SplitHostPort(udp)

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := socketio.Dial(ctx, "ws://"+addr, &socketio.DialOptions{Header: http.Header{"Host": {"localhost:" + port}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := strings.Repeat("5a", 20)
	hs := mediation.Handshake{ID: id}
	c.Emit(hs.Event(), hs.Args()...)
	ev, err := c.ReadEvent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mediation.Decode(ev.Name, ev.Args)
	if err != nil {
		t.Fatal(err)
	}
	est, ok := m.(mediation.Established)
	if !ok || est.Caps == nil || len(est.Caps.ICEServers) != 2 {
		t.Fatalf("established: %#v", m)
	}
	stun, relay := est.Caps.ICEServers[0], est.Caps.ICEServers[1]
	wantRelay := []string{
		"turn:localhost:" + udpPort + "?transport=udp",
		"turn:localhost:" + port + "?transport=tcp",
		"turns:localhost:" + port + "?transport=tcp",
	}
	if stun.URLs[0] != "stun:localhost:"+udpPort || strings.Join(relay.URLs, " ") != strings.Join(wantRelay, " ") {
		t.Fatalf("ICE servers %+v, want stun:localhost:%s and %v", est.Caps.ICEServers, udpPort, wantRelay)
	}
	if !strings.HasSuffix(relay.Username, ":"+id) || relay.Credential == "" {
		t.Fatalf("TURN credentials %q / %q", relay.Username, relay.Credential)
	}

	// Allocate over TURNS on the HTTP port, relay to a peer socket and back.
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: testcert.PoolFromFile(t, certFile), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	cl, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Conn: turn.NewSTUNConn(tc),
		Username: relay.Username, Password: relay.Credential,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	rc, err := cl.Allocate()
	if err != nil {
		t.Fatalf("allocate over TURNS: %v", err)
	}
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	rc.WriteTo([]byte("through the relay"), peer.LocalAddr())
	buf := make([]byte, 100)
	peer.SetReadDeadline(time.Now().Add(startTimeout))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "through the relay" || from.String() != rc.LocalAddr().String() {
		t.Fatalf("peer got %q from %v (relay %v): %v", buf[:n], from, rc.LocalAddr(), err)
	}
}

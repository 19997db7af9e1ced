package iceserver

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/testcert"
)

func peerID(i int) string { return fmt.Sprintf("%040x", i) }

// turnServer starts a TURN server on loopback that may relay to loopback
// (the test's peers live there), with cfg's other settings.
func turnServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.PacketConn == nil {
		cfg.PacketConn = listenUDP(t)
	}
	cfg.TURN = true
	return start(t, cfg)
}

// turnEntry returns the TURN entry of an ICE server list.
func turnEntry(t *testing.T, servers []mediation.ICEServer) mediation.ICEServer {
	t.Helper()
	for _, s := range servers {
		if strings.HasPrefix(s.URLs[0], "turn") {
			return s
		}
	}
	t.Fatalf("no TURN server in %+v", servers)
	return mediation.ICEServer{}
}

// turnClient connects a pion/turn client over conn (a UDP socket, or a
// stream wrapped by turn.NewSTUNConn) to server.
func turnClient(t *testing.T, server string, conn net.PacketConn, user, pass string) *turn.Client {
	t.Helper()
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server,
		TURNServerAddr: server,
		Conn:           conn,
		Username:       user,
		Password:       pass,
		LoggerFactory:  pionLogs{quiet()},
		RTO:            200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func udpClient(t *testing.T, s *Server, user, pass string) *turn.Client {
	return turnClient(t, s.cfg.PacketConn.LocalAddr().String(), listenUDP(t), user, pass)
}

// roundTrip sends through relay to a peer socket and back.
func roundTrip(t *testing.T, relay net.PacketConn) {
	t.Helper()
	peer := listenUDP(t)
	if _, err := relay.WriteTo([]byte("hello"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	peer.SetReadDeadline(time.Now().Add(waitTimeout))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("peer got %q, %v", buf[:n], err)
	}
	if from.String() != relay.LocalAddr().String() {
		t.Fatalf("peer got it from %v, want the relay %v", from, relay.LocalAddr())
	}
	if _, err := peer.WriteTo([]byte("world"), from); err != nil {
		t.Fatal(err)
	}
	relay.SetReadDeadline(time.Now().Add(waitTimeout))
	n, from, err = relay.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "world" || from.String() != peer.LocalAddr().String() {
		t.Fatalf("client got %q from %v, %v", buf[:n], from, err)
	}
}

func TestTURNRelayWithIssuedCredentials(t *testing.T) {
	s := turnServer(t, Config{AllowLoopbackPeers: true})
	servers, exp := s.ICEServers(peerID(1), "127.0.0.1:8888")
	port := s.cfg.PacketConn.LocalAddr().(*net.UDPAddr).Port
	want := []string{fmt.Sprintf("stun:127.0.0.1:%d", port)}
	if len(servers) != 2 || fmt.Sprint(servers[0].URLs) != fmt.Sprint(want) {
		t.Fatalf("servers %+v", servers)
	}
	e := turnEntry(t, servers)
	if fmt.Sprint(e.URLs) != fmt.Sprintf("[turn:127.0.0.1:%d?transport=udp]", port) {
		t.Fatalf("TURN URLs %v (no TCP listener: UDP only)", e.URLs)
	}
	if d := time.Until(exp); d < DefaultCredentialTTL-time.Minute || d > DefaultCredentialTTL {
		t.Fatalf("expires in %v", d)
	}
	if !strings.HasSuffix(e.Username, ":"+peerID(1)) {
		t.Fatalf("username %q", e.Username)
	}

	c := udpClient(t, s, e.Username, e.Credential)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	if ip := relay.LocalAddr().(*net.UDPAddr).IP.String(); ip != "127.0.0.1" {
		t.Fatalf("relay address %v", relay.LocalAddr())
	}
	roundTrip(t, relay)
	if count(s.metrics.allocationsTotal) != 1 || s.quotas.count() != 1 {
		t.Fatalf("allocations: total %v, open %d", count(s.metrics.allocationsTotal), s.quotas.count())
	}
	// Counted just after the send, which the peer may see first.
	eventually(t, "5 bytes relayed each way", func() bool {
		return count(s.metrics.toPeer) == 5 && count(s.metrics.fromPeer) == 5
	})
	// Closing deallocates and frees the slot.
	relay.Close()
	eventually(t, "the allocation to go", func() bool { return s.quotas.count() == 0 })
}

func TestTURNRefusesBadCredentials(t *testing.T) {
	s := turnServer(t, Config{})
	e := turnEntry(t, func() []mediation.ICEServer { v, _ := s.ICEServers(peerID(1), "127.0.0.1"); return v }())
	expiredUser, expiredPass := credentials(s.secret, peerID(1), time.Now().Add(-time.Minute))
	otherUser, otherPass := credentials([]byte("another secret"), peerID(1), time.Now().Add(time.Hour))
	for _, tt := range []struct{ name, user, pass, reason string }{
		{"expired", expiredUser, expiredPass, refuseExpired},
		{"wrong password", e.Username, e.Credential + "x", refuseBadPassword},
		{"another secret", otherUser, otherPass, refuseBadPassword},
		{"static username", "admin", "admin", refuseBadUsername},
		{"bad peer id", "99999999999:zz", "x", refuseBadUsername},
	} {
		before := s.refusals(tt.reason)
		c := udpClient(t, s, tt.user, tt.pass)
		if _, err := c.Allocate(); err == nil {
			t.Fatalf("%s: allocation granted", tt.name)
		}
		if got := s.refusals(tt.reason); got <= before {
			t.Errorf("%s: %s refusals %v, want more than %v", tt.name, tt.reason, got, before)
		}
	}
	if s.quotas.count() != 0 || count(s.metrics.allocationsTotal) != 0 {
		t.Fatal("an allocation was made")
	}
}

func TestTURNCaps(t *testing.T) {
	t.Run("per peer, per IP", func(t *testing.T) {
		s := turnServer(t, Config{MaxAllocationsPerPeer: 1, MaxAllocationsPerIP: 2})
		alloc := func(peer int) error {
			e := turnEntry(t, func() []mediation.ICEServer { v, _ := s.ICEServers(peerID(peer), "127.0.0.1"); return v }())
			_, err := udpClient(t, s, e.Username, e.Credential).Allocate()
			return err
		}
		if err := alloc(1); err != nil {
			t.Fatal(err)
		}
		if alloc(1) == nil || s.refusals(refuseQuotaPeer) != 1 {
			t.Fatalf("second allocation of one peer: refusals %v", s.refusals(refuseQuotaPeer))
		}
		if err := alloc(2); err != nil {
			t.Fatal(err)
		}
		if alloc(3) == nil || s.refusals(refuseQuotaIP) != 1 {
			t.Fatalf("third allocation from one IP: refusals %v", s.refusals(refuseQuotaIP))
		}
	})
	t.Run("total, under a flood", func(t *testing.T) {
		const max, tries = 5, 40
		s := turnServer(t, Config{MaxAllocations: max})
		granted := 0
		for i := range tries {
			e := turnEntry(t, func() []mediation.ICEServer { v, _ := s.ICEServers(peerID(100+i), "127.0.0.1"); return v }())
			if _, err := udpClient(t, s, e.Username, e.Credential).Allocate(); err == nil {
				granted++
			}
		}
		if granted != max || s.quotas.count() != max || s.refusals(refuseQuotaTotal) != tries-max {
			t.Fatalf("granted %d, open %d, refused %v; want %d, %d, %d", granted, s.quotas.count(),
				s.refusals(refuseQuotaTotal), max, max, tries-max)
		}
		// The server still answers STUN.
		if _, err := udpClient(t, s, "", "").SendBindingRequest(); err != nil {
			t.Fatalf("binding after the flood: %v", err)
		}
	})
}

func TestTURNPeerPolicy(t *testing.T) {
	s := turnServer(t, Config{})
	e := turnEntry(t, func() []mediation.ICEServer { v, _ := s.ICEServers(peerID(1), "127.0.0.1"); return v }())
	c := udpClient(t, s, e.Username, e.Credential)
	if _, err := c.Allocate(); err != nil {
		t.Fatal(err)
	}
	// Permission requests go to the server only; refused ones never lead to
	// traffic toward those addresses.
	for _, tt := range []struct{ addr, reason string }{
		{"127.0.0.1:9", refuseLoopback},
		{"[::1]:9", refuseLoopback},
		{"[::ffff:127.0.0.1]:9", refuseLoopback},
		{"169.254.169.254:80", refuseLinkLocal},
		{"[fe80::1]:9", refuseLinkLocal},
		{"0.0.0.0:9", refuseUnspecified},
		{"224.0.0.251:5353", refuseLinkLocal},
		{"239.1.2.3:9", refuseMulticast},
		{"255.255.255.255:9", refuseMulticast},
		{"10.1.2.3:9", refusePrivate},
		{"192.168.1.1:80", refusePrivate},
		{"100.64.0.1:9", refusePrivate},
	} {
		addr, err := net.ResolveUDPAddr("udp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CreatePermission(addr); err == nil {
			t.Errorf("permission toward %s granted", tt.addr)
		}
		if s.refusals(tt.reason) == 0 {
			t.Errorf("%s: no %s refusal counted", tt.addr, tt.reason)
		}
	}
	// A documentation address is a fine peer.
	if err := c.CreatePermission(&net.UDPAddr{IP: net.IPv4(203, 0, 113, 5), Port: 9}); err != nil {
		t.Fatalf("permission toward a public address: %v", err)
	}
}

func TestTURNRefusesOwnPorts(t *testing.T) {
	s := turnServer(t, Config{AllowLoopbackPeers: true, OwnPorts: []int{8888}})
	e := turnEntry(t, func() []mediation.ICEServer { v, _ := s.ICEServers(peerID(1), "127.0.0.1"); return v }())
	relay, err := udpClient(t, s, e.Username, e.Credential).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	e2 := turnEntry(t, func() []mediation.ICEServer { v, _ := s.ICEServers(peerID(2), "127.0.0.1"); return v }())
	other, err := udpClient(t, s, e2.Username, e2.Credential).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	// The STUN/TURN port itself, the mediator's HTTP port and another relay.
	for _, to := range []net.Addr{s.cfg.PacketConn.LocalAddr(), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8888}, other.LocalAddr()} {
		before := s.refusals(refuseOwnPort)
		if _, err := relay.WriteTo([]byte("loop"), to); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the own-port refusal toward "+to.String(), func() bool { return s.refusals(refuseOwnPort) > before })
	}
	// The other relay never saw a byte.
	other.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := other.ReadFrom(make([]byte, 100)); err == nil {
		t.Fatalf("relay to relay delivered %d bytes", n)
	}
	if count(s.metrics.toPeer) != 0 {
		t.Fatalf("%v bytes relayed", count(s.metrics.toPeer))
	}
}

func TestTURNRelayRateLimit(t *testing.T) {
	// A budget of one burst: 64 KiB pass, the rest of 200 KiB sent at once is dropped.
	s := turnServer(t, Config{AllowLoopbackPeers: true, RelayBytesPerSecond: 1})
	e := turnEntry(t, func() []mediation.ICEServer { v, _ := s.ICEServers(peerID(1), "127.0.0.1"); return v }())
	relay, err := udpClient(t, s, e.Username, e.Credential).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	peer := listenUDP(t)
	chunk := make([]byte, 1000)
	for range 200 {
		relay.WriteTo(chunk, peer.LocalAddr())
	}
	// Loopback may lose some of the burst before it reaches the server; what
	// reaches it passes up to the budget and no further.
	eventually(t, "dropped bytes counted", func() bool { return count(s.metrics.droppedRate) > 0 })
	relay.WriteTo(chunk, peer.LocalAddr()) // after the drops began: dropped too
	eventually(t, "the last datagram dropped", func() bool { return count(s.metrics.droppedRate) >= 2000 })
	if got := count(s.metrics.toPeer); got == 0 || got > float64(burstFor(1)) {
		t.Fatalf("%v bytes relayed, want some and at most the %d byte budget", got, burstFor(1))
	}
}

func TestTURNOverTCPAndTLS(t *testing.T) {
	cert := testcert.New(t, "localhost", "127.0.0.1")
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[useTLS], func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{Listener: ln, AllowLoopbackPeers: true}
			if useTLS {
				cfg.Listener = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
				cfg.Certificate = func() *tls.Certificate { return &cert }
			}
			s := turnServer(t, cfg)
			servers, _ := s.ICEServers(peerID(1), "localhost:443")
			e := turnEntry(t, servers)
			port := ln.Addr().(*net.TCPAddr).Port
			urls := fmt.Sprint(e.URLs)
			if !strings.Contains(urls, fmt.Sprintf("turn:localhost:%d?transport=tcp", port)) {
				t.Fatalf("no TCP URL in %s", urls)
			}
			if strings.Contains(urls, "turns:") != useTLS {
				t.Fatalf("turns: offered %v with TLS %v: %s", strings.Contains(urls, "turns:"), useTLS, urls)
			}
			if useTLS {
				// Not for a name the certificate does not cover.
				other, _ := s.ICEServers(peerID(1), "mediator.example")
				if strings.Contains(fmt.Sprint(other), "turns:") {
					t.Fatalf("turns: offered for a host outside the certificate: %v", other)
				}
			}
			var conn net.Conn
			if useTLS {
				conn, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: testcert.Pool(t, cert), ServerName: "localhost"})
			} else {
				conn, err = net.Dial("tcp", ln.Addr().String())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			c := turnClient(t, ln.Addr().String(), turn.NewSTUNConn(conn), e.Username, e.Credential)
			relay, err := c.Allocate()
			if err != nil {
				t.Fatalf("allocate: %v", err)
			}
			roundTrip(t, relay)
		})
	}
}

func TestTURNStreamConnCaps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := turnServer(t, Config{Listener: ln, MaxStreamConns: 2})
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	eventually(t, "the third connection refused", func() bool { return s.refusals(refuseStreamConns) == 1 })
	// The first two still work.
	c := turnClient(t, ln.Addr().String(), turn.NewSTUNConn(conns[0]), "", "")
	if _, err := c.SendBindingRequest(); err != nil {
		t.Fatalf("binding over an admitted connection: %v", err)
	}
}

func TestMalformedPacketsCounted(t *testing.T) {
	s := turnServer(t, Config{})
	cl := listenUDP(t)
	to := s.cfg.PacketConn.LocalAddr()
	bad := [][]byte{
		[]byte("hello"),
		{0x16, 3, 1, 0, 5},
		// A STUN header whose attribute runs past the end.
		append([]byte{0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42}, append(make([]byte, 12), 0x00, 0x06, 0x00, 0xff, 0, 0, 0, 0)...),
		// A binding request with a wrong FINGERPRINT.
		func() []byte {
			m := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
			m.Raw[len(m.Raw)-1] ^= 0xff
			return m.Raw
		}(),
	}
	for _, b := range bad {
		cl.WriteTo(b, to)
	}
	eventually(t, "malformed packets counted", func() bool { return count(s.metrics.malformed) >= 3 })
	// A TURN request pion cannot parse is counted as a request error.
	cl.WriteTo(bad[2], to)
	if _, err := udpClient(t, s, "", "").SendBindingRequest(); err != nil {
		t.Fatalf("binding after malformed packets: %v", err)
	}
}

func TestURLHost(t *testing.T) {
	for in, want := range map[string]string{
		"mediator.example:8888": "mediator.example",
		"Mediator.Example.":     "mediator.example",
		"127.0.0.1:1":           "127.0.0.1",
		"[::1]:8888":            "::1",
		"[2001:db8::1]":         "2001:db8::1",
		"localhost":             "localhost",
		"":                      "",
		"a b:1":                 "",
		"evil.example/x:1":      "",
		"[fe80::1%eth0]:1":      "",
		"0.0.0.0:1":             "",
		"-bad.example":          "",
		strings.Repeat("a", 64): "",
	} {
		got, ok := urlHost(in)
		if got != want || ok != (want != "") {
			t.Errorf("urlHost(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

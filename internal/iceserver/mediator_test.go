package iceserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/turn/v5"

	"github.com/p2pcdn/p2pcdn/internal/certreload"
	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/mediator"
	"github.com/p2pcdn/p2pcdn/internal/portmux"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
	"github.com/p2pcdn/p2pcdn/internal/testcert"
)

// stack is a mediator as the command wires it: one TCP port split by
// portmux (HTTP(S), WS(S), TURN over TCP and TLS), one UDP port for STUN and
// TURN, certificates from files that may be renewed.
type stack struct {
	addr     string // TCP and UDP, same port number
	certFile string
	keyFile  string
	med      *mediator.Server
	ice      *Server
}

func startStack(t *testing.T) *stack {
	t.Helper()
	dir := t.TempDir()
	st := &stack{}
	st.certFile, st.keyFile = testcert.Write(t, dir, "localhost")
	certs, err := certreload.New(st.certFile, st.keyFile, time.Nanosecond, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.addr = ln.Addr().String()
	pc, err := net.ListenPacket("udp4", st.addr)
	if err != nil {
		ln.Close()
		t.Skipf("UDP port %s taken: %v", st.addr, err)
	}
	mux := portmux.New(ln, portmux.Config{
		TLS:    &tls.Config{GetCertificate: certs.GetCertificate, NextProtos: []string{"http/1.1"}},
		Logger: quiet(),
	})
	st.med = &mediator.Server{Logger: quiet()}
	st.ice, err = New(Config{
		PacketConn: pc, Listener: mux.STUN(), Certificate: certs.Certificate,
		TURN: true, AllowLoopbackPeers: true,
		Registerer: st.med.Metrics(), Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	st.med.ICE = st.ice
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 3)
	go func() { errs <- mux.Run(ctx) }()
	go func() { errs <- st.ice.Run(ctx) }()
	go func() { errs <- st.med.Serve(ctx, mux.HTTP()) }()
	t.Cleanup(func() {
		cancel()
		for range 3 {
			if err := <-errs; err != nil {
				t.Errorf("stack: %v", err)
			}
		}
	})
	return st
}

// join connects a peer over Socket.IO naming host, hands shake and returns
// the decoded capabilities and the connection.
func (st *stack) join(t *testing.T, id, host string) (*mediation.Capabilities, *socketio.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := socketio.Dial(ctx, "ws://"+st.addr, &socketio.DialOptions{Header: http.Header{"Host": {host}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
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
	if !ok || est.Caps == nil || est.Caps.P2PCDN != 1 {
		t.Fatalf("got %#v, want established with our capabilities", m)
	}
	return est.Caps, c
}

func urlsWith(servers []mediation.ICEServer, prefix string) (mediation.ICEServer, string) {
	for _, s := range servers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, prefix) {
				return s, u
			}
		}
	}
	return mediation.ICEServer{}, ""
}

// hostPort takes the host:port out of a STUN/TURN URL.
func hostPort(u string) string {
	u = u[strings.Index(u, ":")+1:]
	if i := strings.Index(u, "?"); i >= 0 {
		u = u[:i]
	}
	return u
}

// A peer gets STUN and TURN from its mediator's established and relays
// through each transport with those credentials alone.
func TestPeerRelaysWithCredentialsFromEstablished(t *testing.T) {
	st := startStack(t)
	_, port, _ := net.SplitHostPort(st.addr)
	caps, conn := st.join(t, peerID(7), "localhost:"+port)
	if caps.ICEExpires <= time.Now().Unix() {
		t.Fatalf("ice_expires %d is not in the future", caps.ICEExpires)
	}
	want := []string{
		"stun:localhost:" + port,
		"turn:localhost:" + port + "?transport=udp",
		"turn:localhost:" + port + "?transport=tcp",
		"turns:localhost:" + port + "?transport=tcp",
	}
	if got := fmt.Sprint(caps.ICEServers); !strings.Contains(got, strings.Join(want[1:], " ")) || !strings.Contains(got, want[0]) {
		t.Fatalf("ice servers %s, want %v", got, want)
	}
	turnSrv, _ := urlsWith(caps.ICEServers, "turn:")

	t.Run("udp", func(t *testing.T) {
		_, u := urlsWith(caps.ICEServers, "turn:")
		c := turnClient(t, strings.Replace(hostPort(u), "localhost", "127.0.0.1", 1), listenUDP(t), turnSrv.Username, turnSrv.Credential)
		relay, err := c.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, relay)
	})
	t.Run("tcp", func(t *testing.T) {
		tc, err := net.Dial("tcp", st.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		relay, err := turnClient(t, st.addr, turn.NewSTUNConn(tc), turnSrv.Username, turnSrv.Credential).Allocate()
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, relay)
	})
	t.Run("tls", func(t *testing.T) {
		tc, err := tls.Dial("tcp", st.addr, &tls.Config{RootCAs: st.pool(t), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		relay, err := turnClient(t, st.addr, turn.NewSTUNConn(tc), turnSrv.Username, turnSrv.Credential).Allocate()
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, relay)
	})

	// Fresh credentials on request.
	conn.Emit(mediation.EventGetICEServers)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ev, err := conn.ReadEvent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mediation.Decode(ev.Name, ev.Args)
	if err != nil {
		t.Fatal(err)
	}
	if ans, ok := m.(mediation.ICEServers); !ok || len(ans.Servers) != 2 || ans.Expires < caps.ICEExpires {
		t.Fatalf("get_ice_servers answered %#v", m)
	}

	// The counters are on the mediator's /metrics.
	body := httpGet(t, http.DefaultClient, "http://"+st.addr+"/metrics")
	if !strings.Contains(body, "p2pcdn_turn_allocations_total 3") || !strings.Contains(body, "p2pcdn_mediator_connections") {
		t.Fatalf("/metrics lacks the TURN or mediator counters:\n%.2000s", body)
	}
}

// A peer that reached the mediator by an address the certificate does not
// name gets no turns: URL; a bad Host gets no servers, only the level.
func TestICEServersFollowTheHost(t *testing.T) {
	st := startStack(t)
	caps, _ := st.join(t, peerID(1), st.addr)
	if _, u := urlsWith(caps.ICEServers, "turns:"); u != "" {
		t.Fatalf("turns: offered for %s, which the certificate does not name: %v", st.addr, caps.ICEServers)
	}
	if _, u := urlsWith(caps.ICEServers, "stun:127.0.0.1:"); u == "" {
		t.Fatalf("no STUN on the address used: %v", caps.ICEServers)
	}
	caps, _ = st.join(t, peerID(2), "bad host!")
	if len(caps.ICEServers) != 0 || caps.ICEExpires != 0 {
		t.Fatalf("servers for a malformed Host: %+v", caps)
	}
}

func (st *stack) pool(t *testing.T) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(st.certFile)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(b)
	return p
}

func httpGet(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// HTTPS and WSS on the same port, and a renewed certificate served without
// a restart.
func TestMediatorTLSAndRenewal(t *testing.T) {
	st := startStack(t)
	_, port, _ := net.SplitHostPort(st.addr)
	tlsConf := &tls.Config{RootCAs: st.pool(t), ServerName: "localhost"}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}
	if got := httpGet(t, client, "https://localhost:"+port+"/healthz"); got != "ok\n" {
		t.Fatalf("HTTPS /healthz: %q", got)
	}
	d := websocket.Dialer{TLSClientConfig: tlsConf, HandshakeTimeout: waitTimeout}
	ws, _, err := d.Dial("wss://localhost:"+port+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatalf("WSS: %v", err)
	}
	ws.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.HasPrefix(string(msg), "0{") {
		t.Fatalf("WSS open packet %q, %v", msg, err)
	}
	ws.Close()

	serial := func() string {
		c, err := tls.Dial("tcp", st.addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	testcert.Write(t, t.TempDir(), "localhost") // unrelated files: no change
	if serial() != before {
		t.Fatal("certificate changed without a renewal")
	}
	dir := st.certFile[:strings.LastIndex(st.certFile, "/")]
	testcert.Write(t, dir, "localhost")
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(st.certFile, later, later)
	os.Chtimes(st.keyFile, later, later)
	if serial() == before {
		t.Fatal("renewed certificate not served")
	}
	// Clients trusting the new certificate get through.
	if got := httpGet(t, &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: st.pool(t), ServerName: "localhost"}}},
		"https://localhost:"+port+"/healthz"); got != "ok\n" {
		t.Fatalf("HTTPS after renewal: %q", got)
	}
}

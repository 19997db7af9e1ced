package portmux

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/testcert"
)

const waitTimeout = 20 * time.Second

// start runs a Mux on loopback with an HTTP server on its HTTP side; STUN
// connections are returned on the channel.
func start(t *testing.T, cfg Config) (addr string, stun <-chan net.Conn, m *Mux) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	m = New(ln, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.Host)
	})}
	go hs.Serve(m.HTTP())
	ch := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := m.STUN().Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		hs.Close()
	})
	return ln.Addr().String(), ch, m
}

// stunRequest is a binding request header (no attributes).
var stunRequest = []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

func expectSTUN(t *testing.T, stun <-chan net.Conn) {
	t.Helper()
	select {
	case c := <-stun:
		defer c.Close()
		buf := make([]byte, len(stunRequest))
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != string(stunRequest) {
			t.Fatalf("STUN side read %x, %v", buf, err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no STUN connection")
	}
}

func get(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestOnePortFourKinds(t *testing.T) {
	cert := testcert.New(t, "localhost")
	addr, stun, _ := start(t, Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}})

	if got := get(t, http.DefaultClient, "http://"+addr+"/"); got != "hello "+addr {
		t.Fatalf("HTTP: %q", got)
	}
	tlsConf := &tls.Config{RootCAs: testcert.Pool(t, cert), ServerName: "localhost"}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}
	if got := get(t, client, "https://"+addr+"/"); got != "hello "+addr {
		t.Fatalf("HTTPS: %q", got)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(stunRequest)
	expectSTUN(t, stun)

	tc, err := tls.Dial("tcp", addr, tlsConf)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.Write(stunRequest)
	expectSTUN(t, stun)
}

// closed reports whether the server closed c (EOF or reset) rather than
// leaving it open past wait.
func closed(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func TestRefusals(t *testing.T) {
	addr, _, m := start(t, Config{MaxPending: 2, SniffTimeout: time.Minute})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Binary garbage with STUN's first bits but no cookie: closed.
	g := dial()
	g.Write([]byte{0, 1, 0, 0, 0, 0, 0, 0, 0})
	if !closed(g, waitTimeout) {
		t.Fatal("garbage left open")
	}
	// TLS without a certificate configured: closed.
	tc := tls.Client(dial(), &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err == nil {
		t.Fatal("TLS handshake succeeded without a certificate")
	}
	// Two silent connections fill the pending slots; a third that speaks at
	// once is served, and the oldest silent one makes room for it.
	a, b := dial(), dial()
	for deadline := time.Now().Add(waitTimeout); m.pendingLen() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("silent connections not taken in")
		}
	}
	if got := get(t, http.DefaultClient, "http://"+addr+"/"); got != "hello "+addr {
		t.Fatalf("HTTP past full pending slots: %q", got)
	}
	if !closed(a, waitTimeout) {
		t.Fatal("the oldest silent connection was not closed to make room")
	}
	if closed(b, 100*time.Millisecond) {
		t.Fatal("a younger pending connection was closed early")
	}
}

// TestSilentFloodDoesNotLockOut: a client holding many more silent
// connections than MaxPending (a few hundred sockets, re-opened as they time
// out) must not keep others from the port, as it did when new connections
// were the ones closed.
func TestSilentFloodDoesNotLockOut(t *testing.T) {
	cert := testcert.New(t, "localhost")
	addr, stun, m := start(t, Config{MaxPending: 32, SniffTimeout: time.Minute,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}})
	for i := range 3 * 32 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if i%2 == 1 {
			c.Write([]byte{0x16}) // the first byte of a TLS record, then nothing
		}
	}
	for deadline := time.Now().Add(waitTimeout); m.pendingLen() < 32; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d silent connections pending, want 32", m.pendingLen())
		}
	}
	if got := get(t, http.DefaultClient, "http://"+addr+"/"); got != "hello "+addr {
		t.Fatalf("HTTP during the flood: %q", got)
	}
	tlsConf := &tls.Config{RootCAs: testcert.Pool(t, cert), ServerName: "localhost"}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}
	if got := get(t, client, "https://"+addr+"/"); got != "hello "+addr {
		t.Fatalf("HTTPS during the flood: %q", got)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(stunRequest)
	expectSTUN(t, stun)
	if n := m.pendingLen(); n > 32 {
		t.Fatalf("%d connections pending, over MaxPending", n)
	}
}

func TestSniffTimeout(t *testing.T) {
	addr, _, _ := start(t, Config{SniffTimeout: 100 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !closed(c, waitTimeout) {
		t.Fatal("silent connection not closed after the sniff timeout")
	}
}

package portmux

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/testcert"
)

// FuzzClassify: whatever a connection starts with, it ends up on the HTTP
// side, the STUN side or closed, with its bytes intact; never a panic or a
// hang past the sniff timeout.
func FuzzClassify(f *testing.F) {
	for _, seed := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), stunRequest, {0x16, 3, 1, 0, 5, 1, 0, 0, 1}, {0, 1, 0}, {}, {0x40, 0, 0, 0},
	} {
		f.Add(seed)
	}
	cert := testcert.New(f, "localhost")
	m := &Mux{
		cfg:  Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, SniffTimeout: 200 * time.Millisecond, MaxPending: 16},
		log:  slog.New(slog.DiscardHandler),
		http: newSubListener(nil),
		stun: newSubListener(nil),
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		client, server := net.Pipe()
		defer client.Close()
		go func() {
			client.Write(b)
			io.Copy(io.Discard, client) // answers of a TLS handshake attempt
		}()
		done := make(chan struct{})
		go func() { defer close(done); m.classify(context.Background(), server, m.admit(server)) }()
		var got net.Conn
		var side string
		select {
		case got = <-m.http.conns:
			side = "http"
		case got = <-m.stun.conns:
			side = "stun"
		case <-done:
		}
		<-done
		if got == nil {
			return // closed
		}
		defer got.Close()
		if side == "stun" && !isSTUN(b) {
			t.Fatalf("%x went to STUN", b)
		}
		if side == "http" && (len(b) == 0 || b[0] == 0x16 || b[0]&0xC0 == 0) {
			t.Fatalf("%x went to HTTP", b)
		}
		buf := make([]byte, len(b))
		got.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := io.ReadFull(got, buf); err != nil || !bytes.Equal(buf, b) {
			t.Fatalf("handed on %x, want %x (%v)", buf, b, err)
		}
	})
}

package certreload

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/testcert"
)

func serial(t *testing.T, c *tls.Certificate) string {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.String()
}

// bump moves a file's modification time forward, as a renewal a second
// later would.
func bump(t *testing.T, files ...string) {
	t.Helper()
	later := time.Now().Add(time.Duration(len(files)) * time.Second)
	for _, f := range files {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testcert.Write(t, dir, "localhost")
	r, err := New(certFile, keyFile, time.Nanosecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	first := serial(t, r.Certificate())
	if again := serial(t, r.Certificate()); again != first {
		t.Fatal("reloaded without a change")
	}

	// Half a renewal: a new certificate beside the old key does not load; the
	// old one stays.
	c2, k2 := testcert.PEM(t, "localhost")
	os.WriteFile(certFile, c2, 0o600)
	bump(t, certFile)
	if got := serial(t, r.Certificate()); got != first {
		t.Fatal("a mismatched pair replaced the certificate")
	}
	// The key arrives: the new pair is served.
	os.WriteFile(keyFile, k2, 0o600)
	bump(t, certFile, keyFile)
	second := serial(t, r.Certificate())
	if second == first {
		t.Fatal("renewed files not picked up")
	}

	// Through a TLS handshake.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: r.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	handshake := func() string {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := handshake(); got != second {
		t.Fatalf("handshake served %s, want %s", got, second)
	}
	testcert.Write(t, dir, "localhost")
	bump(t, certFile, keyFile, keyFile)
	if got := handshake(); got == second {
		t.Fatal("handshake after renewal served the old certificate")
	}

	// Files gone (a botched deploy): keep serving.
	os.Remove(filepath.Join(dir, "key.pem"))
	if r.Certificate() == nil {
		t.Fatal("no certificate after the key vanished")
	}
}

func TestNewFailsClearly(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(filepath.Join(dir, "nope.pem"), filepath.Join(dir, "nokey.pem"), 0, nil); err == nil {
		t.Fatal("missing files accepted")
	}
	certFile, _ := testcert.Write(t, dir, "localhost")
	if _, err := New(certFile, certFile, 0, nil); err == nil {
		t.Fatal("a certificate as its own key accepted")
	}
}

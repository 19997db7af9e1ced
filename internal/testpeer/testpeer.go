// Package testpeer gives tests of the layers above the mediator a loopback world: an in-process mediator, a
// WebRTC transport and a mediator client, each stopped when the test ends. It lives apart from testenv because
// it imports the mediator, whose own tests use testenv.
package testpeer

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediator"
	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
)

// dialTimeout guards against hangs on a busy machine; it measures nothing.
const dialTimeout = 90 * time.Second

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Mediator is an in-process mediator serving on a loopback port.
type Mediator struct {
	Server *mediator.Server
	Addr   string // host:port
}

// URL is the mediator's address as peers are given it.
func (m *Mediator) URL() string { return "ws://" + m.Addr }

// StartMediator serves a quiet mediator on 127.0.0.1 until the test ends; see Serve.
func StartMediator(t testing.TB) *Mediator {
	t.Helper()
	return Serve(t, &mediator.Server{Logger: quiet()})
}

// Serve runs srv on a free port of 127.0.0.1 until the test ends, and fails the test if Serve returns an
// error. It returns once the mediator has answered a request, so all of Serve's goroutines are running: tests
// that count goroutines take their baseline after this.
func Serve(t testing.TB, srv *mediator.Server) *Mediator {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mediator: %v", err)
		}
	})
	m := &Mediator{Server: srv, Addr: ln.Addr().String()}
	resp, err := http.Get("http://" + m.Addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return m
}

// Transport is a quiet WebRTC transport that gathers loopback candidates; it is closed when the test ends.
func Transport(t testing.TB) *rtc.Transport {
	t.Helper()
	tr, err := rtc.New(rtc.Config{Loopback: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// Dial connects a quiet mediator client to url as peerID ("" = a random id); it is closed when the test ends.
func Dial(t testing.TB, url, peerID string) *mediatorclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	c, err := mediatorclient.Dial(ctx, url, mediatorclient.Options{PeerID: peerID, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

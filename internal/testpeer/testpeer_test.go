package testpeer

import (
	"net/http"
	"strings"
	"testing"
)

func TestStartMediatorDialTransport(t *testing.T) {
	m := StartMediator(t)
	if !strings.HasPrefix(m.Addr, "127.0.0.1:") || m.URL() != "ws://"+m.Addr {
		t.Fatalf("mediator at %q (URL %q), want a loopback address", m.Addr, m.URL())
	}
	resp, err := http.Get("http://" + m.Addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz answered %s", resp.Status)
	}
	const id = "00000000000000000000000000000000000000aa"
	if c := Dial(t, m.URL(), id); c.PeerID() != id {
		t.Errorf("client PeerID %q, want %q", c.PeerID(), id)
	}
	if c := Dial(t, m.URL(), ""); len(c.PeerID()) != 40 {
		t.Errorf("random PeerID %q is not 40 hex characters", c.PeerID())
	}
	if Transport(t) == nil {
		t.Fatal("Transport returned nil")
	}
}

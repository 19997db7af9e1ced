package rtc

import (
	"bytes"
	"io"
	"testing"

	"github.com/pion/ice/v4"
)

// TestFirstCheckMarks: two Go peers mark offer and answer with "ice":"first-check" and connect; an
// offer without the mark (the prototype's, a browser's) gets an answer without it.
func TestFirstCheckMarks(t *testing.T) {
	for _, marked := range []bool{true, false} {
		var answer string
		strip := func(offer string) []string {
			if marked {
				return []string{offer}
			}
			sig, err := ParseSignal(offer)
			if err != nil {
				t.Fatal(err)
			}
			sig.ICE = ""
			return []string{sig.String()}
		}
		ca, cb := connectRewrite(t, newTestTransport(t, Config{}), newTestTransport(t, Config{}), strip,
			func(a string) string {
				if sig, err := ParseSignal(a); err == nil && sig.Type == SignalAnswer {
					answer = a // Accept returns after sending it: no race with the read below
				}
				return a
			})
		msg := []byte("first check")
		if _, err := ca.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(cb, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("read %q, %v", got, err)
		}
		sig, err := ParseSignal(answer)
		if err != nil {
			t.Fatal(err)
		}
		if got := sig.ICE == ICEFirstCheck; got != marked {
			t.Errorf("offer marked %v: answer marked %v", marked, got)
		}
	}
}

// TestSelectFirst: only a negotiation that selects on first checks, only over direct candidates, only
// once we have sent a check on the pair, and only once.
func TestSelectFirst(t *testing.T) {
	tr := newTestTransport(t, Config{})
	host := func(addr string) ice.Candidate {
		c, err := ice.NewCandidateHost(&ice.CandidateHostConfig{Network: "udp", Address: addr, Port: 5000, Component: 1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	relay, err := ice.NewCandidateRelay(&ice.CandidateRelayConfig{Network: "udp", Address: "192.0.2.9", Port: 6000,
		Component: 1, RelAddr: "192.0.2.1", RelPort: 7000})
	if err != nil {
		t.Fatal(err)
	}
	local, remote := host("192.0.2.1"), host("192.0.2.2")
	if tr.selectFirst("abcd:efgh", true, local, remote) {
		t.Error("selected for a negotiation that did not ask")
	}
	tr.firstCheckOn("abcd")
	if tr.selectFirst("abcd:efgh", false, local, remote) {
		t.Error("selected a pair we never checked")
	}
	if tr.selectFirst("abcd:efgh", true, local, relay) {
		t.Error("selected a relayed pair")
	}
	if tr.selectFirst("wxyz:efgh", true, local, remote) {
		t.Error("selected for another ufrag")
	}
	if !tr.selectFirst("abcd:efgh", true, local, remote) {
		t.Fatal("did not select the first direct check")
	}
	if tr.selectFirst("abcd:efgh", true, local, remote) {
		t.Error("selected twice")
	}
}

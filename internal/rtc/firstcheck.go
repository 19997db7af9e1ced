package rtc

import (
	"strings"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"
)

// First-check selection (docs/extensions.md). With regular nomination the offerer (ICE controlling)
// waits for its own check to succeed and then sends a second one to nominate the pair: ICE takes two
// round trips after the answer, three with DTLS before the answerer may start its handshake. Between
// two Go peers of ours each side instead takes, as its selected pair, the pair of the first
// authenticated check that reaches it over a direct path (host, server- or peer-reflexive candidates on
// both ends): that check proves the path both ways, since its answer goes back the same way. The
// answerer, which is the DTLS client, then starts DTLS half a round trip after the answer was sent.
// Relayed pairs still go through nomination, so a direct path found at about the same time wins.

// ICEFirstCheck is the "ice" mark of signals whose sender selects pairs on their first check.
const ICEFirstCheck = "first-check"

// firstCheckOn lets the binding-request handler select a pair for the negotiation whose local ICE
// username fragment is ufrag, once.
func (t *Transport) firstCheckOn(ufrag string) {
	if ufrag == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.firstCheck == nil {
		t.firstCheck = make(map[string]bool)
	}
	t.firstCheck[ufrag] = true
}

// firstCheckOff forgets ufrag (the negotiation is over).
func (t *Transport) firstCheckOff(ufrag string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.firstCheck, ufrag)
}

// onBindingRequest is pion's binding-request hook: it returns true (select this pair) for the first
// authenticated check over a direct pair of a negotiation that selects on first checks, once we have
// sent a check on that pair ourselves: so the remote gets one too and selects as well (an answerer
// sends its triggered check before pion calls this; an offerer that selected before sending would
// only send keepalives, on pion's 200 ms ticks). pion calls it only for requests whose integrity it
// has verified.
func (t *Transport) onBindingRequest(m *stun.Message, local, remote ice.Candidate, pair *ice.CandidatePair) bool {
	var u stun.Username
	if pair == nil || u.GetFrom(m) != nil {
		return false
	}
	return t.selectFirst(u.String(), pair.RequestsSent() > 0, local, remote)
}

// selectFirst decides for a check with STUN user name username (ours:theirs, in a request to us)
// arriving over local and remote, on a pair we have (sent) or have not sent a check on yet.
func (t *Transport) selectFirst(username string, sent bool, local, remote ice.Candidate) bool {
	if !sent || !direct(local) || !direct(remote) {
		return false
	}
	ufrag, _, ok := strings.Cut(username, ":")
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.firstCheck[ufrag] {
		return false
	}
	delete(t.firstCheck, ufrag) // once: later checks must not make the selection flap
	return true
}

func direct(c ice.Candidate) bool {
	switch c.Type() {
	case ice.CandidateTypeHost, ice.CandidateTypeServerReflexive, ice.CandidateTypePeerReflexive:
		return true
	}
	return false
}

// sdpUfrag is the a=ice-ufrag of an SDP, "" if it has none.
func sdpUfrag(sdp string) string {
	for line := range strings.Lines(sdp) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=ice-ufrag:"); ok {
			return v
		}
	}
	return ""
}

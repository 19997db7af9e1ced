package rtc

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// ErrICEFailed is wrapped by every *ICEError.
var ErrICEFailed = errors.New("ICE failed")

// ICEError says that ICE found no working path to the remote peer, and with what it tried: the kinds of
// candidates each side had and whether STUN/TURN servers were configured for the connection.
type ICEError struct {
	Local, Remote CandidateKinds
	STUN, TURN    bool // servers of that kind were configured (each TURN server also answers STUN)
	// NoRemote: the remote sent no candidate we could use and never reached us.
	NoRemote bool
}

func (e *ICEError) Error() string {
	var b strings.Builder
	b.WriteString("ICE failed: ")
	if e.NoRemote {
		b.WriteString("the peer offered no address we could use")
	} else {
		b.WriteString("no working path between the peers")
	}
	fmt.Fprintf(&b, " (we had %s; the peer had %s; %s)", e.Local, e.Remote, ServersText(e.STUN, e.TURN))
	return b.String()
}

func (e *ICEError) Unwrap() error { return ErrICEFailed }

// Hint suggests what would let the peers connect, for a user; "" when nothing obvious would.
func (e *ICEError) Hint() string {
	switch {
	case !e.STUN && !e.TURN:
		return "peers behind NATs need a STUN server, and often a TURN relay: " +
			"a p2pcdn mediator started with --turn offers both, or pass --ice-server"
	case !e.TURN:
		return "these networks need a TURN relay: a p2pcdn mediator started with --turn offers one, " +
			"or pass --ice-server turn:USER:PASS@HOST:PORT"
	case !e.Local.Has("relay", "udp") && !e.Local.Has("relay", "tcp"):
		return "the TURN server gave us no relay address: check that it is reachable and its credentials valid"
	}
	return ""
}

// ServersText says which kinds of ICE servers were configured, for messages.
func ServersText(stunOn, turnOn bool) string {
	switch {
	case turnOn:
		return "STUN and TURN were configured"
	case stunOn:
		return "STUN was configured, TURN was not"
	default:
		return "no STUN or TURN server was configured"
	}
}

// CandidateKinds is a set of ICE candidate kinds: type (host, srflx, prflx, relay) by protocol (udp,
// tcp). For local relay candidates the protocol is the one used to reach the TURN server.
type CandidateKinds uint8

var kindTypes = [...]string{"host", "srflx", "prflx", "relay"}

func kindBit(typ, proto string) CandidateKinds {
	for i, t := range kindTypes {
		if t == typ {
			shift := 2 * i
			if strings.EqualFold(proto, "tcp") {
				shift++
			}
			return 1 << shift
		}
	}
	return 0
}

// fromServers are the kinds a STUN or TURN server gives: srflx and relay, by UDP or TCP.
const fromServers = CandidateKinds(0b11001100)

// Has reports whether k holds the kind typ/proto, e.g. ("relay", "udp").
func (k CandidateKinds) Has(typ, proto string) bool {
	b := kindBit(typ, proto)
	return b != 0 && k&b != 0
}

// String lists the kinds as "host/udp, srflx/udp", or "no candidates".
func (k CandidateKinds) String() string {
	var parts []string
	for i, t := range kindTypes {
		for j, p := range []string{"udp", "tcp"} {
			if k&(1<<(2*i+j)) != 0 {
				parts = append(parts, t+"/"+p)
			}
		}
	}
	if len(parts) == 0 {
		return "no candidates"
	}
	return strings.Join(parts, ", ")
}

// candidateKind returns the kind of a candidate line ("candidate:..." with or without "a=").
func candidateKind(line string) CandidateKinds {
	line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "a="))
	c, err := ice.UnmarshalCandidate(line)
	if err != nil {
		return 0
	}
	proto := "udp"
	if c.NetworkType().IsTCP() {
		proto = "tcp"
	}
	return kindBit(c.Type().String(), proto)
}

// sdpCandidateKinds returns the kinds of the candidates an SDP carries.
func sdpCandidateKinds(sdp string) CandidateKinds {
	var k CandidateKinds
	for line := range strings.Lines(sdp) {
		if strings.HasPrefix(line, "a=candidate:") {
			k |= candidateKind(line)
		}
	}
	return k
}

// serverKinds reports whether servers include STUN and TURN URLs.
func serverKinds(servers []webrtc.ICEServer) (stunOn, turnOn bool) {
	for _, s := range servers {
		for _, u := range s.URLs {
			uri, err := stun.ParseURI(u)
			if err != nil {
				continue
			}
			switch uri.Scheme {
			case stun.SchemeTypeSTUN, stun.SchemeTypeSTUNS:
				stunOn = true
			case stun.SchemeTypeTURN, stun.SchemeTypeTURNS:
				turnOn = true
			}
		}
	}
	return stunOn, turnOn
}

// Timing of the ICE failure watch (measured on loopback and in the simulated internet of vnet_test.go).
// pion itself declares failure only after its disconnected+failed timeouts from the start of checks;
// we stop as soon as every candidate pair has failed and nothing has changed for a while.
const (
	// iceWatchInterval is how often a negotiation looks at its candidate pairs.
	iceWatchInterval = 250 * time.Millisecond
	// iceQuiet is how long nothing may change (no new candidate or pair, no check received or
	// answered) with every pair failed before ICE counts as failed. pion fails a pair after 8 checks,
	// 200 ms apart, so a new candidate keeps the watch busy for at least 1.6 s anyway.
	iceQuiet = time.Second
	// iceMinDial and iceMinAccept are the least time from applying the remote description to declaring
	// failure. The answerer waits longer: its checks start before the offerer has the answer, and the
	// offerer's first checks may arrive only after a slow signalling path.
	iceMinDial   = 2 * time.Second
	iceMinAccept = 4 * time.Second
	// iceNoCandidate is how long a negotiation may have no candidate pair at all (the remote gave no
	// usable candidate and none of its checks arrived) once our own gathering is complete.
	iceNoCandidate = 3 * time.Second
)

// iceWatch decides from candidate-pair statistics when ICE has failed, and remembers the candidate
// kinds seen for the error message. Owned by one negotiation's goroutine.
type iceWatch struct {
	minWait    time.Duration
	since      time.Time // remote description applied; zero until then
	local      CandidateKinds
	remote     CandidateKinds
	sig        iceSignature
	lastChange time.Time
}

// iceSignature changes whenever ICE makes any progress worth waiting for.
type iceSignature struct {
	pairs, local, remote, notFailed int
	requests, responses             uint64
}

// observe updates the watch from a stats report and reports whether ICE has failed. gathered says our
// own candidate gathering is complete.
func (w *iceWatch) observe(report webrtc.StatsReport, gathered bool, now time.Time) bool {
	var sig iceSignature
	for _, st := range report {
		switch st := st.(type) {
		case webrtc.ICECandidatePairStats:
			sig.pairs++
			if st.State != webrtc.StatsICECandidatePairStateFailed {
				sig.notFailed++
			}
			sig.requests += st.RequestsReceived
			sig.responses += st.ResponsesReceived
		case webrtc.ICECandidateStats:
			typ := st.CandidateType.String()
			switch st.Type {
			case webrtc.StatsTypeLocalCandidate:
				sig.local++
				proto := st.Protocol
				if st.CandidateType == webrtc.ICECandidateTypeRelay && st.RelayProtocol != "" {
					proto = st.RelayProtocol
				}
				w.local |= kindBit(typ, proto)
			case webrtc.StatsTypeRemoteCandidate:
				sig.remote++
				w.remote |= kindBit(typ, st.Protocol)
			}
		}
	}
	if sig != w.sig || w.lastChange.IsZero() {
		w.sig, w.lastChange = sig, now
	}
	if w.since.IsZero() || !gathered || now.Sub(w.since) < w.minWait {
		return false
	}
	if sig.pairs == 0 {
		return now.Sub(w.since) >= iceNoCandidate && now.Sub(w.lastChange) >= iceQuiet
	}
	return sig.notFailed == 0 && now.Sub(w.lastChange) >= iceQuiet
}

package rtc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"
)

// MaxSignalSize bounds a signal's JSON text. A complete SDP with a few dozen candidates is a few KiB.
const MaxSignalSize = 64 << 10

// Signal types.
const (
	SignalOffer     = "offer"
	SignalAnswer    = "answer"
	SignalCandidate = "candidate"
	// Simple-peer control messages we ignore; ParseSignal reports them with these types.
	SignalRenegotiate        = "renegotiate"
	SignalTransceiverRequest = "transceiverRequest"
)

// ErrBadSignal is wrapped by every ParseSignal error.
var ErrBadSignal = errors.New("bad signal")

// Signal is one simple-peer compatible signalling message: an offer or answer carrying an SDP, or a
// trickle candidate. Our offers and answers are marked (docs/extensions.md): Trickle says the sender
// takes trickled candidates and trickles toward marked peers, P2PCDN the extension level it speaks (1:
// more data channels may be opened on the connection). RecvBuffer, on descriptions from our native
// peers, is what the sender's UDP socket holds, so that a sender may keep more in flight toward it than
// toward a browser (see Config.MinWindow). simple-peer ignores these fields.
type Signal struct {
	Type       string                   `json:"type,omitempty"`
	SDP        string                   `json:"sdp,omitempty"`
	Candidate  *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Trickle    bool                     `json:"trickle,omitempty"`
	P2PCDN     int                      `json:"p2pcdn,omitempty"`
	RecvBuffer int                      `json:"rcvbuf,omitempty"`
	// ICE is ICEFirstCheck when the sender selects a candidate pair on its first check (firstcheck.go).
	ICE string `json:"ice,omitempty"`
}

// maxRecvBuffer bounds an advertised receive buffer; larger values are ignored.
const maxRecvBuffer = 1 << 30

// ExtensionLevel is the level of docs/extensions.md our signals carry in "p2pcdn".
const ExtensionLevel = 1

// Ours reports whether the signal came from a peer of ours (either mark is set).
func (s Signal) Ours() bool { return s.Trickle || s.P2PCDN >= 1 }

// String encodes s as the JSON text carried in a mediation signal event.
func (s Signal) String() string {
	b, err := json.Marshal(s)
	if err != nil { // cannot happen: only strings and a plain struct
		panic(err)
	}
	return string(b)
}

// ParseSignal decodes a signal's JSON text. Offers and answers need an SDP, candidates a candidate
// object (a missing "type" next to "candidate" means candidate, as simple-peer sends). Simple-peer's
// {"renegotiate":true} and {"transceiverRequest":...} come back with those types, other unknown string
// types come back as they are: callers ignore what they do not handle. Anything else is an error
// wrapping ErrBadSignal.
func ParseSignal(s string) (Signal, error) {
	if len(s) > MaxSignalSize {
		return Signal{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBadSignal, len(s), MaxSignalSize)
	}
	var raw struct {
		Type               *string         `json:"type"`
		SDP                *string         `json:"sdp"`
		Candidate          json.RawMessage `json:"candidate"`
		Renegotiate        json.RawMessage `json:"renegotiate"`
		TransceiverRequest json.RawMessage `json:"transceiverRequest"`
		Trickle            json.RawMessage `json:"trickle"`
		P2PCDN             json.RawMessage `json:"p2pcdn"`
		RecvBuffer         json.RawMessage `json:"rcvbuf"`
		ICE                json.RawMessage `json:"ice"`
	}
	trimmed := bytes.TrimSpace([]byte(s))
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Signal{}, fmt.Errorf("%w: not a JSON object", ErrBadSignal)
	}
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return Signal{}, fmt.Errorf("%w: %w", ErrBadSignal, err)
	}
	var sig Signal
	if raw.Type != nil {
		sig.Type = *raw.Type
	}
	if raw.SDP != nil {
		sig.SDP = *raw.SDP
	}
	// Marks of another type than ours are ignored rather than refused: they only enable extensions.
	sig.Trickle = bytes.Equal(raw.Trickle, []byte("true"))
	var level float64
	if json.Unmarshal(raw.P2PCDN, &level) == nil && level >= 1 && level <= 1<<16 {
		sig.P2PCDN = int(level)
	}
	var rcvbuf float64
	if json.Unmarshal(raw.RecvBuffer, &rcvbuf) == nil && rcvbuf >= 1 && rcvbuf <= maxRecvBuffer {
		sig.RecvBuffer = int(rcvbuf)
	}
	if bytes.Equal(raw.ICE, []byte(`"`+ICEFirstCheck+`"`)) {
		sig.ICE = ICEFirstCheck
	}
	hasCandidate := len(raw.Candidate) > 0 && !bytes.Equal(raw.Candidate, []byte("null"))
	switch {
	case sig.Type == "" && hasCandidate:
		sig.Type = SignalCandidate
	case sig.Type == "" && raw.Renegotiate != nil:
		return Signal{Type: SignalRenegotiate}, nil
	case sig.Type == "" && raw.TransceiverRequest != nil:
		return Signal{Type: SignalTransceiverRequest}, nil
	case sig.Type == "":
		return Signal{}, fmt.Errorf("%w: no type, sdp or candidate", ErrBadSignal)
	}
	switch sig.Type {
	case SignalOffer, SignalAnswer:
		if sig.SDP == "" {
			return Signal{}, fmt.Errorf("%w: %s without sdp", ErrBadSignal, sig.Type)
		}
	case SignalCandidate:
		if !hasCandidate {
			return Signal{}, fmt.Errorf("%w: candidate signal without candidate", ErrBadSignal)
		}
		var c webrtc.ICECandidateInit
		if err := json.Unmarshal(raw.Candidate, &c); err != nil {
			return Signal{}, fmt.Errorf("%w: candidate: %w", ErrBadSignal, err)
		}
		sig.Candidate = &c
		sig.SDP = ""
	}
	return sig, nil
}

// FirstCandidateAddress returns the address of the first candidate line of an SDP, "" if it has none.
// It says roughly where an offer comes from; only ICE proves it.
func FirstCandidateAddress(sdp string) string {
	for line := range strings.Lines(sdp) {
		if c, ok := strings.CutPrefix(strings.TrimSpace(line), "a=candidate:"); ok {
			// foundation component transport priority address port "typ" type ...
			if f := strings.Fields(c); len(f) >= 6 {
				return strings.ToLower(f[4])
			}
		}
	}
	return ""
}

package rtc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

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

// Signal is one simple-peer compatible signalling message: an offer or answer carrying a complete SDP,
// or a trickle candidate.
type Signal struct {
	Type      string                   `json:"type,omitempty"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
}

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

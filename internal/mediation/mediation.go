// Package mediation defines the events peers and mediators exchange over
// Socket.IO (PROTOCOL.md section 5) and strict codecs for their arguments.
//
// The package is pure: it knows nothing about connections. Decode turns an
// event's name and raw JSON arguments into a typed Message, rejecting
// anything that does not match the contract with an error that says which
// argument was wrong and why. Encode does the reverse, producing the
// arguments to hand to a Socket.IO Emit.
package mediation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Event names, as they appear on the wire.
const (
	EventHandshake   = "handshake"
	EventEstablished = "established"
	EventGetPeers    = "get_peers"
	EventPeers       = "peers"
	EventSignal      = "signal"
	EventAnnounce    = "announce"
	EventFinish      = "finish"

	// Batch events of ours (docs/extensions.md), used only toward a mediator
	// whose established carried "batch".
	EventAnnounceMany = "announce_many"
	EventFinishMany   = "finish_many"
	EventGetPeersMany = "get_peers_many"
)

// ConnType is the second argument of a handshake.
type ConnType int

// Connection types of the handshake event.
const (
	// Mediation is a peer (browser or p2pcdn process) talking to its mediator.
	Mediation ConnType = 0
	// Replication is another mediator asking for peers or relaying signals.
	Replication ConnType = 1
)

func (t ConnType) String() string {
	switch t {
	case Mediation:
		return "MEDIATION"
	case Replication:
		return "REPLICATION"
	}
	return "ConnType(" + strconv.Itoa(int(t)) + ")"
}

// Limits of the decoder. Everything else is bounded by the transport's
// maximum payload.
const (
	// IDLen is the length of a peer id, mediator id or full hash in hex.
	IDLen = 40
	// RelayIDLen is the length of a mediator-to-mediator signal id: the
	// sender's peer id followed by the receiver's.
	RelayIDLen = 2 * IDLen
	// MaxSignalData bounds a signal's data. Non-trickle SDPs with every
	// candidate are a few KiB; 64 KiB leaves room without letting one peer
	// push megabytes through another's connection.
	MaxSignalData = 64 << 10
	// MaxPeerIDs bounds the ids of one peers event we accept.
	MaxPeerIDs = 1000
	// MaxBatch bounds the hashes of one batch event the decoder accepts
	// (about 860 KB of JSON, under the transport's 1 MB payload). A mediator
	// advertises its own, usually lower, limit in established.
	MaxBatch = 20000
)

// Message is one decoded mediation event.
type Message interface {
	// Event is the event name on the wire.
	Event() string
	// Args are the event's arguments, ready for a Socket.IO Emit.
	Args() []any
}

// Handshake announces the sender's id and what it is.
type Handshake struct {
	ID   string
	Type ConnType
}

// Established accepts a handshake. Caps is nil in the prototype's form (no
// argument) and set when a mediator of ours sends its capabilities (ice.go).
type Established struct{ Caps *Capabilities }

// GetPeers asks who seeds Hash.
type GetPeers struct{ Hash string }

// Peers answers GetPeers. IDs is never nil once decoded.
type Peers struct {
	Hash string
	IDs  []string
}

// Signal carries WebRTC signalling data. Sent by a peer, PeerID is the
// receiver; delivered by a mediator, PeerID is the sender. Between mediators
// PeerID is RelayIDLen long: sender id followed by receiver id.
type Signal struct {
	Hash   string
	PeerID string
	Data   string
}

// Announce says the sender seeds Hash now.
type Announce struct{ Hash string }

// Finish says the sender stops seeding Hash.
type Finish struct{ Hash string }

// AnnounceMany is Announce for each of Hashes.
type AnnounceMany struct{ Hashes []string }

// FinishMany is Finish for each of Hashes.
type FinishMany struct{ Hashes []string }

// GetPeersMany is GetPeers for each of Hashes; it is answered with one
// Peers per hash.
type GetPeersMany struct{ Hashes []string }

func (Handshake) Event() string    { return EventHandshake }
func (Established) Event() string  { return EventEstablished }
func (GetPeers) Event() string     { return EventGetPeers }
func (Peers) Event() string        { return EventPeers }
func (Signal) Event() string       { return EventSignal }
func (Announce) Event() string     { return EventAnnounce }
func (Finish) Event() string       { return EventFinish }
func (AnnounceMany) Event() string { return EventAnnounceMany }
func (FinishMany) Event() string   { return EventFinishMany }
func (GetPeersMany) Event() string { return EventGetPeersMany }

func (m Handshake) Args() []any { return []any{m.ID, int(m.Type)} }
func (m Established) Args() []any {
	if m.Caps == nil {
		return nil
	}
	return []any{m.Caps}
}
func (m GetPeers) Args() []any { return []any{m.Hash} }

// Args never encodes a nil list as null: the prototype's peers iterate it.
func (m Peers) Args() []any {
	ids := m.IDs
	if ids == nil {
		ids = []string{}
	}
	return []any{m.Hash, ids}
}
func (m Signal) Args() []any   { return []any{m.Hash, m.PeerID, m.Data} }
func (m Announce) Args() []any { return []any{m.Hash} }
func (m Finish) Args() []any   { return []any{m.Hash} }

// Args of batch events never encode a nil list as null.
func (m AnnounceMany) Args() []any { return []any{nonNil(m.Hashes)} }
func (m FinishMany) Args() []any   { return []any{nonNil(m.Hashes)} }
func (m GetPeersMany) Args() []any { return []any{nonNil(m.Hashes)} }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// SplitRelayID splits a mediator-to-mediator signal id into the sender's and
// the receiver's peer ids.
func SplitRelayID(id string) (from, to string, ok bool) {
	if len(id) != RelayIDLen || !IsID(id) {
		return "", "", false
	}
	return id[:IDLen], id[IDLen:], true
}

// IsID reports whether s is lowercase hex of an even length; callers check the
// length they expect.
func IsID(s string) bool {
	if len(s) == 0 || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidHash reports whether s is a full hash: 40 lowercase hex characters.
func ValidHash(s string) bool { return len(s) == IDLen && IsID(s) }

// ValidPeerID reports whether s is a peer or mediator id: 40 lowercase hex
// characters.
func ValidPeerID(s string) bool { return len(s) == IDLen && IsID(s) }

// ErrUnknownEvent is wrapped by Decode's error for event names outside the
// contract.
var ErrUnknownEvent = errors.New("unknown event")

// DecodeError says which argument of which event was wrong.
type DecodeError struct {
	Event string // event name as received (quoted in messages)
	Arg   int    // 1-based argument position, 0 for the event as a whole
	What  string // the argument's role, e.g. "hash"
	Err   error
}

func (e *DecodeError) Error() string {
	if e.Arg == 0 {
		return fmt.Sprintf("mediation: event %q: %v", e.Event, e.Err)
	}
	return fmt.Sprintf("mediation: event %q argument %d (%s): %v", e.Event, e.Arg, e.What, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// maxQuotedName bounds how much of a hostile event name an error repeats.
const maxQuotedName = 64

// Decode checks an event against the contract and returns it typed. The
// argument count must match exactly; hashes and ids must be lowercase hex of
// the right length; signal data must be a non-empty JSON string of at most
// MaxSignalData bytes. Event names that are not in the contract give an
// error wrapping ErrUnknownEvent.
func Decode(name string, args []json.RawMessage) (Message, error) {
	d := decoder{event: name, args: args}
	if len(d.event) > maxQuotedName {
		d.event = d.event[:maxQuotedName] + "..."
	}
	switch name {
	case EventHandshake:
		if err := d.count(2); err != nil {
			return nil, err
		}
		id, err := d.id(1, "id", IDLen)
		if err != nil {
			return nil, err
		}
		t, err := d.connType(2)
		if err != nil {
			return nil, err
		}
		return Handshake{ID: id, Type: t}, nil
	case EventEstablished:
		return d.established()
	case EventGetICEServers:
		return d.getICEServers()
	case EventICEServers:
		return d.iceServers()
	case EventGetPeers, EventAnnounce, EventFinish:
		if err := d.count(1); err != nil {
			return nil, err
		}
		h, err := d.hash(1)
		if err != nil {
			return nil, err
		}
		switch name {
		case EventGetPeers:
			return GetPeers{Hash: h}, nil
		case EventAnnounce:
			return Announce{Hash: h}, nil
		}
		return Finish{Hash: h}, nil
	case EventPeers:
		if err := d.count(2); err != nil {
			return nil, err
		}
		h, err := d.hash(1)
		if err != nil {
			return nil, err
		}
		ids, err := d.idList(2)
		if err != nil {
			return nil, err
		}
		return Peers{Hash: h, IDs: ids}, nil
	case EventSignal:
		if err := d.count(3); err != nil {
			return nil, err
		}
		h, err := d.hash(1)
		if err != nil {
			return nil, err
		}
		id, err := d.id(2, "peer id", IDLen, RelayIDLen)
		if err != nil {
			return nil, err
		}
		data, err := d.signalData(3)
		if err != nil {
			return nil, err
		}
		return Signal{Hash: h, PeerID: id, Data: data}, nil
	case EventAnnounceMany, EventFinishMany, EventGetPeersMany:
		if err := d.count(1); err != nil {
			return nil, err
		}
		hs, err := d.hashList(1)
		if err != nil {
			return nil, err
		}
		switch name {
		case EventAnnounceMany:
			return AnnounceMany{Hashes: hs}, nil
		case EventFinishMany:
			return FinishMany{Hashes: hs}, nil
		}
		return GetPeersMany{Hashes: hs}, nil
	}
	return nil, &DecodeError{Event: d.event, Err: ErrUnknownEvent}
}

type decoder struct {
	event string
	args  []json.RawMessage
}

func (d *decoder) fail(arg int, what string, format string, a ...any) error {
	return &DecodeError{Event: d.event, Arg: arg, What: what, Err: fmt.Errorf(format, a...)}
}

func (d *decoder) count(n int) error {
	if len(d.args) != n {
		return &DecodeError{Event: d.event, Err: fmt.Errorf("want %d arguments, got %d", n, len(d.args))}
	}
	return nil
}

// kind names a JSON value's type for error messages.
func kind(raw json.RawMessage) string {
	b := bytes.TrimLeft(raw, " \t\r\n")
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func (d *decoder) str(arg int, what string) (string, error) {
	raw := d.args[arg-1]
	if k := kind(raw); k != "a string" {
		return "", d.fail(arg, what, "want a string, got %s", k)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", d.fail(arg, what, "malformed string: %w", err)
	}
	return s, nil
}

func (d *decoder) hash(arg int) (string, error) {
	s, err := d.str(arg, "hash")
	if err != nil {
		return "", err
	}
	if !ValidHash(s) {
		return "", d.fail(arg, "hash", "want 40 lowercase hex characters, got %s", describe(s))
	}
	return s, nil
}

func (d *decoder) id(arg int, what string, lens ...int) (string, error) {
	s, err := d.str(arg, what)
	if err != nil {
		return "", err
	}
	for _, n := range lens {
		if len(s) == n && IsID(s) {
			return s, nil
		}
	}
	want := "40"
	if len(lens) > 1 {
		want = "40 or 80"
	}
	return "", d.fail(arg, what, "want %s lowercase hex characters, got %s", want, describe(s))
}

func (d *decoder) connType(arg int) (ConnType, error) {
	raw := d.args[arg-1]
	if k := kind(raw); k != "a number" {
		return 0, d.fail(arg, "connection type", "want 0 or 1, got %s", k)
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, d.fail(arg, "connection type", "malformed number: %w", err)
	}
	switch n.String() {
	case "0":
		return Mediation, nil
	case "1":
		return Replication, nil
	}
	return 0, d.fail(arg, "connection type", "want 0 or 1, got %s", describe(n.String()))
}

func (d *decoder) signalData(arg int) (string, error) {
	raw := d.args[arg-1]
	// Check the raw size first so a huge value is not unescaped for nothing;
	// escapes only shrink a string, so this bound is safe.
	if len(raw) > 2*MaxSignalData+2 {
		return "", d.fail(arg, "signal data", "%d bytes is more than the %d allowed", len(raw), MaxSignalData)
	}
	s, err := d.str(arg, "signal data")
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", d.fail(arg, "signal data", "empty")
	}
	if len(s) > MaxSignalData {
		return "", d.fail(arg, "signal data", "%d bytes is more than the %d allowed", len(s), MaxSignalData)
	}
	return s, nil
}

func (d *decoder) idList(arg int) ([]string, error) {
	raw := d.args[arg-1]
	if k := kind(raw); k != "an array" {
		return nil, d.fail(arg, "peer ids", "want an array, got %s", k)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, d.fail(arg, "peer ids", "malformed array: %w", err)
	}
	if len(items) > MaxPeerIDs {
		return nil, d.fail(arg, "peer ids", "%d ids is more than the %d allowed", len(items), MaxPeerIDs)
	}
	ids := make([]string, 0, len(items))
	for i, it := range items {
		if k := kind(it); k != "a string" {
			return nil, d.fail(arg, "peer ids", "element %d: want a string, got %s", i, k)
		}
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			return nil, d.fail(arg, "peer ids", "element %d: malformed string: %w", i, err)
		}
		if !ValidPeerID(s) {
			return nil, d.fail(arg, "peer ids", "element %d: want 40 lowercase hex characters, got %s", i, describe(s))
		}
		ids = append(ids, s)
	}
	return ids, nil
}

// hashList decodes a batch's array of hashes. The common shape, plain
// 40-character strings, is scanned directly: a batch holds thousands of
// them, and encoding/json would cost an allocation or two each. Anything
// else (escapes, odd whitespace) takes the general path, so the result is
// the same as encoding/json's.
func (d *decoder) hashList(arg int) ([]string, error) {
	raw := d.args[arg-1]
	if k := kind(raw); k != "an array" {
		return nil, d.fail(arg, "hashes", "want an array, got %s", k)
	}
	if hs, ok := scanHashList(raw); ok {
		if len(hs) > MaxBatch {
			return nil, d.fail(arg, "hashes", "%d hashes is more than the %d allowed", len(hs), MaxBatch)
		}
		return hs, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, d.fail(arg, "hashes", "malformed array: %w", err)
	}
	if len(items) > MaxBatch {
		return nil, d.fail(arg, "hashes", "%d hashes is more than the %d allowed", len(items), MaxBatch)
	}
	hs := make([]string, 0, len(items))
	for i, it := range items {
		if k := kind(it); k != "a string" {
			return nil, d.fail(arg, "hashes", "element %d: want a string, got %s", i, k)
		}
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			return nil, d.fail(arg, "hashes", "element %d: malformed string: %w", i, err)
		}
		if !ValidHash(s) {
			return nil, d.fail(arg, "hashes", "element %d: want 40 lowercase hex characters, got %s", i, describe(s))
		}
		hs = append(hs, s)
	}
	return hs, nil
}

// scanHashList parses raw if it is exactly [] or ["<hash>","<hash>",...]
// with optional whitespace around commas and brackets; ok is false for
// anything else, including invalid hashes, which the general path then
// reports precisely. The hashes are substrings of one copy of raw, so a
// holder that keeps a few of them for long should copy them.
func scanHashList(raw []byte) (hs []string, ok bool) {
	str := strings.Trim(string(raw), " \t\r\n")
	if len(str) < 2 || str[0] != '[' || str[len(str)-1] != ']' {
		return nil, false
	}
	b := strings.Trim(str[1:len(str)-1], " \t\r\n")
	if len(b) == 0 {
		return []string{}, true
	}
	hs = make([]string, 0, min((len(b)+1)/(IDLen+3), MaxBatch+1))
	for {
		if len(b) < IDLen+2 || b[0] != '"' || b[IDLen+1] != '"' || !IsID(b[1:IDLen+1]) {
			return nil, false
		}
		if len(hs) == MaxBatch {
			return append(hs, ""), true // one too many: the caller refuses the batch
		}
		hs = append(hs, b[1:IDLen+1])
		b = strings.TrimLeft(b[IDLen+2:], " \t\r\n")
		if len(b) == 0 {
			return hs, true
		}
		if b[0] != ',' {
			return nil, false
		}
		b = strings.TrimLeft(b[1:], " \t\r\n")
	}
}

// describe quotes an untrusted value for an error message, shortened.
func describe(s string) string {
	const max = 48
	if len(s) > max {
		return fmt.Sprintf("%q... (%d bytes)", s[:max], len(s))
	}
	return strconv.Quote(s)
}

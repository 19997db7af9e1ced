package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Engine.IO protocol 4 packet types, as their one-character text encoding.
const (
	engineOpen    = '0'
	engineClose   = '1'
	enginePing    = '2'
	enginePong    = '3'
	engineMessage = '4'
	engineUpgrade = '5'
	engineNoop    = '6'
)

// recordSeparator joins Engine.IO packets in one HTTP long-polling body.
const recordSeparator = '\x1e'

// EnginePacket is one decoded Engine.IO packet.
type EnginePacket struct {
	Type byte // '0'..'6'
	// Data is the packet's payload after the type character. For a binary packet it is the raw base64 text
	// (polling) or the raw bytes (websocket); this package ignores binary packets.
	Data   string
	Binary bool
}

// ParseEnginePacket decodes one Engine.IO packet in its text form ("4hello", "2probe", "b<base64>").
func ParseEnginePacket(s string) (EnginePacket, error) {
	if s == "" {
		return EnginePacket{}, errors.New("engine.io: empty packet")
	}
	if s[0] == 'b' {
		return EnginePacket{Type: engineMessage, Data: s[1:], Binary: true}, nil
	}
	if s[0] < engineOpen || s[0] > engineNoop {
		return EnginePacket{}, fmt.Errorf("engine.io: unknown packet type %q", s[0])
	}
	return EnginePacket{Type: s[0], Data: s[1:]}, nil
}

// SplitPayload decodes an HTTP long-polling body: packets separated by "\x1e". At most maxPackets packets are
// accepted (0 means no limit) so a hostile body cannot make us build an unbounded slice of tiny packets.
func SplitPayload(body string, maxPackets int) ([]EnginePacket, error) {
	if body == "" {
		return nil, errors.New("engine.io: empty polling payload")
	}
	n := strings.Count(body, string(rune(recordSeparator))) + 1
	if maxPackets > 0 && n > maxPackets {
		return nil, fmt.Errorf("engine.io: polling payload holds %d packets, more than the limit of %d", n, maxPackets)
	}
	out := make([]EnginePacket, 0, n)
	for i := 0; i < n; i++ {
		part, rest, _ := strings.Cut(body, string(rune(recordSeparator)))
		body = rest
		p, err := ParseEnginePacket(part)
		if err != nil {
			return nil, fmt.Errorf("packet %d of polling payload: %w", i+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// appendPayload appends encoded Engine.IO packets to dst separated by "\x1e" (a polling response body).
func appendPayload(dst []byte, packets [][]byte) []byte {
	for i, p := range packets {
		if i > 0 {
			dst = append(dst, recordSeparator)
		}
		dst = append(dst, p...)
	}
	return dst
}

// Socket.IO protocol 5 packet types.
const (
	socketConnect      = 0
	socketDisconnect   = 1
	socketEvent        = 2
	socketAck          = 3
	socketConnectError = 4
	socketBinaryEvent  = 5
	socketBinaryAck    = 6
)

// Limits on the header fields of a Socket.IO packet; real clients stay far below them.
const (
	maxNamespaceLen = 256
	maxAckDigits    = 15 // stays an exact integer in JavaScript
	maxAttachDigits = 6
)

// SocketPacket is one decoded Socket.IO packet (the payload of an Engine.IO message packet).
type SocketPacket struct {
	Type        int
	Attachments int    // binary packets only
	Namespace   string // "/" when absent
	AckID       int64  // -1 when absent
	Data        json.RawMessage
}

// ParseSocketPacket decodes "<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]".
func ParseSocketPacket(s string) (SocketPacket, error) {
	p := SocketPacket{Namespace: "/", AckID: -1}
	if s == "" {
		return p, errors.New("socket.io: empty packet")
	}
	if s[0] < '0' || s[0] > '6' {
		return p, fmt.Errorf("socket.io: unknown packet type %q", s[0])
	}
	p.Type = int(s[0] - '0')
	i := 1
	if p.Type == socketBinaryEvent || p.Type == socketBinaryAck {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i || j >= len(s) || s[j] != '-' || j-i > maxAttachDigits {
			return p, errors.New("socket.io: binary packet without a valid attachment count")
		}
		p.Attachments, _ = strconv.Atoi(s[i:j])
		i = j + 1
	}
	if i < len(s) && s[i] == '/' {
		j := strings.IndexByte(s[i:], ',')
		if j < 0 {
			// A namespace with no data ("41/admin") ends at the end of the packet.
			j = len(s) - i
		}
		if j > maxNamespaceLen {
			return p, fmt.Errorf("socket.io: namespace longer than %d characters", maxNamespaceLen)
		}
		p.Namespace = s[i : i+j]
		i += j
		if i < len(s) {
			i++ // the comma
		}
	}
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j > i {
		if j-i > maxAckDigits {
			return p, fmt.Errorf("socket.io: acknowledgement id longer than %d digits", maxAckDigits)
		}
		p.AckID, _ = strconv.ParseInt(s[i:j], 10, 64)
		i = j
	}
	if i < len(s) {
		data := s[i:]
		if !json.Valid([]byte(data)) {
			return p, fmt.Errorf("socket.io: packet data is not valid JSON: %.40q", data)
		}
		p.Data = json.RawMessage(data)
	}
	return p, nil
}

// ParseEvent decodes the data of an EVENT packet: a JSON array whose first element is the event name.
func ParseEvent(data []byte) (Event, error) {
	if !json.Valid(data) {
		// encoding/json words the error precisely.
		var arr []json.RawMessage
		err := json.Unmarshal(data, &arr)
		return Event{}, fmt.Errorf("socket.io: event data is not a JSON array: %w", err)
	}
	return parseEvent(bytes.Clone(data))
}

// parseEvent is ParseEvent for valid JSON the caller hands over: the arguments are slices of data.
func parseEvent(data []byte) (Event, error) {
	arr, err := splitArray(data)
	if err != nil {
		return Event{}, fmt.Errorf("socket.io: event data is not a JSON array: %w", err)
	}
	if len(arr) == 0 {
		return Event{}, errors.New("socket.io: event without a name")
	}
	raw := arr[0]
	if len(raw) == 0 || raw[0] != '"' {
		return Event{}, fmt.Errorf("socket.io: event name is not a string: %.40q", raw)
	}
	var name string
	if inner := raw[1 : len(raw)-1]; plainString(string(inner)) {
		name = string(inner)
	} else if json.Unmarshal(raw, &name) != nil {
		return Event{}, fmt.Errorf("socket.io: event name is not a string: %.40q", raw)
	}
	return Event{Name: name, Args: arr[1:]}, nil
}

// encodeEvent builds the Engine.IO message carrying a Socket.IO EVENT on the default namespace:
// 42["name",arg...].
func encodeEvent(name string, args []any) ([]byte, error) {
	if b, ok := appendEventFast(nil, name, args); ok {
		return b, nil
	}
	var buf bytes.Buffer
	buf.WriteString(`42`)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // SDP and ids need no HTML escaping; keeps frames small
	all := make([]any, 0, 1+len(args))
	all = append(all, name)
	all = append(all, args...)
	if err := enc.Encode(all); err != nil {
		return nil, fmt.Errorf("socketio: encode event %q: %w", name, err)
	}
	b := buf.Bytes()
	return b[:len(b)-1], nil // Encoder adds a newline
}

package wire

import (
	"fmt"
)

// Extension protocol constants (BEP 10 and docs/extensions.md).
const (
	// ExtHandshakeID is the extended id of the BEP 10 handshake.
	ExtHandshakeID = 0
	// InfoExtName is the name p2pcdn_info is advertised under in "m".
	InfoExtName = "p2pcdn_info"
	// InfoBlockSize is the size of one piece of the info bytes.
	InfoBlockSize = 16384
	// MaxInfoSize bounds the info bytes a downloader accepts.
	MaxInfoSize = 8 << 20
	// MaxInlineInfo bounds the info bytes an extended handshake carries itself (info_bytes): one piece
	// of the info bytes, a dictionary of up to about 370 pieces (a 74 MB file).
	MaxInlineInfo = InfoBlockSize
)

// ExtHandshake is the BEP 10 extended handshake: the extensions the sender
// wants to receive, by name, with the extended id it wants them on.
type ExtHandshake struct {
	M map[string]int
	// InfoSize is the size of the info bytes; 0 when the sender lacks them.
	InfoSize int
	// Info is the info bytes themselves (info_bytes), sent when they are at most MaxInlineInfo long so
	// that a downloader has the dictionary without asking for it; nil otherwise.
	Info []byte
}

// Marshal encodes h as the extended handshake payload (after the ext id).
func (h ExtHandshake) Marshal() []byte {
	m := map[string]any{}
	for k, v := range h.M {
		m[k] = v
	}
	d := map[string]any{"m": m}
	if h.InfoSize > 0 {
		d["info_size"] = h.InfoSize
	}
	if len(h.Info) > 0 {
		d["info_bytes"] = h.Info
	}
	b, err := EncodeBencode(d)
	if err != nil { // unreachable: only ints and strings above
		panic(err)
	}
	return b
}

// ParseExtHandshake decodes an extended handshake payload. Unknown keys are
// ignored; ids outside 0..255 and sizes outside 0..MaxInfoSize are errors.
func ParseExtHandshake(p []byte) (ExtHandshake, error) {
	v, n, err := DecodeBencode(p)
	if err != nil {
		return ExtHandshake{}, fmt.Errorf("extended handshake: %w", err)
	}
	if n != len(p) {
		return ExtHandshake{}, fmt.Errorf("extended handshake: %d stray bytes after the dictionary", len(p)-n)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return ExtHandshake{}, fmt.Errorf("extended handshake is %s, want a dictionary", kind(v))
	}
	h := ExtHandshake{M: map[string]int{}}
	if mv, ok := d["m"]; ok {
		m, ok := mv.(map[string]any)
		if !ok {
			return ExtHandshake{}, fmt.Errorf("extended handshake: \"m\" is %s, want a dictionary", kind(mv))
		}
		for k, idv := range m {
			id, ok := idv.(int64)
			if !ok || id < 0 || id > 255 {
				return ExtHandshake{}, fmt.Errorf("extended handshake: id of %.40q is not an integer in 0..255", k)
			}
			h.M[k] = int(id)
		}
	}
	if sv, ok := d["info_size"]; ok {
		s, ok := sv.(int64)
		if !ok || s < 0 || s > MaxInfoSize {
			return ExtHandshake{}, fmt.Errorf("extended handshake: info_size is not an integer in 0..%d", MaxInfoSize)
		}
		h.InfoSize = int(s)
	}
	if iv, ok := d["info_bytes"]; ok {
		b, ok := iv.(string)
		switch {
		case !ok:
			return ExtHandshake{}, fmt.Errorf("extended handshake: info_bytes is %s, want a string", kind(iv))
		case len(b) > MaxInlineInfo:
			return ExtHandshake{}, fmt.Errorf("extended handshake: info_bytes of %d bytes, more than %d", len(b), MaxInlineInfo)
		case len(b) != h.InfoSize:
			return ExtHandshake{}, fmt.Errorf("extended handshake: info_bytes of %d bytes, but info_size %d", len(b), h.InfoSize)
		}
		if len(b) > 0 {
			h.Info = []byte(b)
		}
	}
	return h, nil
}

// InfoMsgType is the msg_type of a p2pcdn_info message.
type InfoMsgType int

// p2pcdn_info message types.
const (
	InfoRequest InfoMsgType = 0
	InfoData    InfoMsgType = 1
	InfoReject  InfoMsgType = 2
)

// InfoMsg is one p2pcdn_info message.
type InfoMsg struct {
	Type      InfoMsgType
	Piece     int
	TotalSize int    // InfoData only
	Data      []byte // InfoData only: the piece's bytes
}

// AppendInfoMsg appends the payload of m (after the ext id) to dst.
func AppendInfoMsg(dst []byte, m InfoMsg) []byte {
	d := map[string]any{"msg_type": int(m.Type), "piece": m.Piece}
	if m.Type == InfoData {
		d["total_size"] = m.TotalSize
	}
	b, err := EncodeBencode(d)
	if err != nil { // unreachable: only ints above
		panic(err)
	}
	dst = append(dst, b...)
	if m.Type == InfoData {
		dst = append(dst, m.Data...)
	}
	return dst
}

// ParseInfoMsg decodes a p2pcdn_info payload. Data aliases p. It checks the
// message on its own (types, ranges, the piece's length against total_size);
// whether it matches what was asked is the caller's business.
func ParseInfoMsg(p []byte) (InfoMsg, error) {
	v, n, err := DecodeBencode(p)
	if err != nil {
		return InfoMsg{}, fmt.Errorf("p2pcdn_info message: %w", err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return InfoMsg{}, fmt.Errorf("p2pcdn_info message is %s, want a dictionary", kind(v))
	}
	intKey := func(k string, max int64) (int, error) {
		x, ok := d[k].(int64)
		if !ok || x < 0 || x > max {
			return 0, fmt.Errorf("p2pcdn_info message: %q is missing or not an integer in 0..%d", k, max)
		}
		return int(x), nil
	}
	var m InfoMsg
	t, err := intKey("msg_type", 2)
	if err != nil {
		return InfoMsg{}, err
	}
	m.Type = InfoMsgType(t)
	if m.Piece, err = intKey("piece", MaxInfoSize/InfoBlockSize); err != nil {
		return InfoMsg{}, err
	}
	rest := p[n:]
	if m.Type != InfoData {
		if len(rest) != 0 {
			return InfoMsg{}, fmt.Errorf("p2pcdn_info message: %d stray bytes after a msg_type %d", len(rest), t)
		}
		return m, nil
	}
	if m.TotalSize, err = intKey("total_size", MaxInfoSize); err != nil {
		return InfoMsg{}, err
	}
	start := m.Piece * InfoBlockSize
	if start >= m.TotalSize {
		return InfoMsg{}, fmt.Errorf("p2pcdn_info data: piece %d is past total_size %d", m.Piece, m.TotalSize)
	}
	if want := min(InfoBlockSize, m.TotalSize-start); len(rest) != want {
		return InfoMsg{}, fmt.Errorf("p2pcdn_info data: piece %d carries %d bytes, want %d", m.Piece, len(rest), want)
	}
	m.Data = rest
	return m, nil
}

func kind(v any) string {
	switch v.(type) {
	case int64:
		return "an integer"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "a dictionary"
	}
	return fmt.Sprintf("%T", v)
}

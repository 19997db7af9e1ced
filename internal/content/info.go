// Package content defines a file's identity on p2pcdn: the info dictionary,
// the prototype-compatible piece and full hashes, and the validation of info
// dictionaries received from untrusted peers. It does no networking.
package content

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// PieceLength is the piece length the prototype uses for every file it hashes.
const PieceLength = 200000

// Bounds applied to info dictionaries from the network. They keep a hostile
// dictionary from making us allocate or compute without limit.
const (
	MinPieceLength = 1 << 10  // 1 KiB
	MaxPieceLength = 16 << 20 // 16 MiB
	MaxPieces      = 1 << 20  // ~45 MB of JSON; 200 GB at the prototype's piece length
	MaxTotalLength = 1 << 42  // 4 TiB
	MaxInfoSize    = 64 << 20 // bytes of JSON ParseInfo accepts
	HashLen        = 40       // hex characters of a piece or full hash
)

// ErrEmptyFile reports a 0-byte file: it has no pieces and no full hash, so
// it cannot be shared.
var ErrEmptyFile = errors.New("empty file (0 bytes) cannot be shared: it has no pieces and no full hash")

// Info is the info dictionary of one file. Field order is the prototype's
// JSON order, which MarshalJSON reproduces byte for byte.
type Info struct {
	FullHash     string   `json:"full_hash"`
	FileName     string   `json:"file_name"`
	PiecesLength int64    `json:"pieces_length"`
	PiecesAmount int      `json:"pieces_amount"`
	TotalLength  int64    `json:"total_length"`
	PieceHashes  []string `json:"piece_hashes"`
}

// MarshalJSON encodes the dictionary compactly, exactly as the prototype's
// JSON.stringify does: same field order, same string escaping, full_hash
// omitted when empty (a 0-byte file), piece_hashes [] rather than null.
func (in *Info) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 128+len(in.FileName)+len(in.PieceHashes)*(HashLen+3))
	b = append(b, '{')
	if in.FullHash != "" {
		b = append(b, `"full_hash":`...)
		b = appendJSString(b, in.FullHash)
		b = append(b, ',')
	}
	b = append(b, `"file_name":`...)
	b = appendJSString(b, in.FileName)
	b = append(b, `,"pieces_length":`...)
	b = strconv.AppendInt(b, in.PiecesLength, 10)
	b = append(b, `,"pieces_amount":`...)
	b = strconv.AppendInt(b, int64(in.PiecesAmount), 10)
	b = append(b, `,"total_length":`...)
	b = strconv.AppendInt(b, in.TotalLength, 10)
	b = append(b, `,"piece_hashes":[`...)
	for i, h := range in.PieceHashes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSString(b, h)
	}
	b = append(b, "]}"...)
	return b, nil
}

// appendJSString quotes s the way JavaScript's JSON.stringify does: only
// '"', '\\' and control characters below 0x20 are escaped (unlike Go, which
// also escapes <, >, & and U+2028/U+2029). Invalid UTF-8 cannot occur in a
// JavaScript string; it becomes U+FFFD, as encoding/json does.
func appendJSString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"':
				b = append(b, '\\', '"')
			case c == '\\':
				b = append(b, '\\', '\\')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// ParseInfo decodes and validates an info dictionary from an untrusted
// source. Unknown fields are ignored; duplicate keys, wrong types, missing
// fields, trailing data and invalid UTF-8 are rejected. Hashes must be 40
// lowercase hex characters: the full hash is computed over the hex text, so
// an uppercase piece hash could never fold to the same full hash anyway. On
// success FileName has already been reduced by SafeName.
func ParseInfo(data []byte) (*Info, error) {
	in, err := decodeInfo(data)
	if err != nil {
		return nil, fmt.Errorf("info dictionary: %w", err)
	}
	in.FileName = SafeName(in.FileName)
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return in, nil
}

func decodeInfo(data []byte) (*Info, error) {
	if len(data) > MaxInfoSize {
		return nil, fmt.Errorf("%d bytes is more than the limit of %d", len(data), MaxInfoSize)
	}
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	in := &Info{}
	seen := make(map[string]bool, 6)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("malformed JSON object key")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("malformed value of %q: %w", key, err)
		}
		var dst any
		switch key {
		case "full_hash":
			dst = &in.FullHash
		case "file_name":
			dst = &in.FileName
		case "pieces_length":
			dst = &in.PiecesLength
		case "pieces_amount":
			dst = &in.PiecesAmount
		case "total_length":
			dst = &in.TotalLength
		case "piece_hashes":
			dst = &in.PieceHashes
		default:
			continue // unknown fields are allowed, for forward compatibility
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		if string(raw) == "null" {
			return nil, fmt.Errorf("%s is null", key)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return nil, fmt.Errorf("wrong type or value for %s: %s", key, typeError(err))
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	for _, k := range []string{"full_hash", "file_name", "pieces_length", "pieces_amount", "total_length", "piece_hashes"} {
		if !seen[k] {
			if k == "full_hash" && seen["total_length"] && in.TotalLength == 0 {
				return nil, ErrEmptyFile
			}
			return nil, fmt.Errorf("missing field %s", k)
		}
	}
	for i, h := range in.PieceHashes {
		if h == "" {
			return nil, fmt.Errorf("piece_hashes[%d] is empty or null", i)
		}
	}
	return in, nil
}

// typeError shortens encoding/json's errors, which name Go types, to what a
// user needs.
func typeError(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return "got a JSON " + ute.Value
	}
	return err.Error()
}

// Validate checks every internal consistency rule of the dictionary: hash
// format, the bounds above, pieces_amount == len(piece_hashes) ==
// ceil(total_length / pieces_length), a safe file name, and that the piece
// hashes fold to full_hash.
func (in *Info) Validate() error {
	if in.TotalLength == 0 && in.FullHash == "" {
		return fmt.Errorf("info dictionary: %w", ErrEmptyFile)
	}
	if err := checkHash(in.FullHash); err != nil {
		return fmt.Errorf("info dictionary: full_hash %w", err)
	}
	if in.PiecesLength < MinPieceLength || in.PiecesLength > MaxPieceLength {
		return fmt.Errorf("info dictionary: pieces_length %d outside %d..%d", in.PiecesLength, MinPieceLength, MaxPieceLength)
	}
	if in.TotalLength <= 0 || in.TotalLength > MaxTotalLength {
		return fmt.Errorf("info dictionary: total_length %d outside 1..%d", in.TotalLength, int64(MaxTotalLength))
	}
	want := (in.TotalLength + in.PiecesLength - 1) / in.PiecesLength
	if want > MaxPieces {
		return fmt.Errorf("info dictionary: %d pieces is more than the limit of %d", want, MaxPieces)
	}
	if int64(in.PiecesAmount) != want {
		return fmt.Errorf("info dictionary: pieces_amount %d but total_length %d needs %d pieces of %d bytes",
			in.PiecesAmount, in.TotalLength, want, in.PiecesLength)
	}
	if len(in.PieceHashes) != in.PiecesAmount {
		return fmt.Errorf("info dictionary: pieces_amount %d but %d piece hashes", in.PiecesAmount, len(in.PieceHashes))
	}
	for i, h := range in.PieceHashes {
		if err := checkHash(h); err != nil {
			return fmt.Errorf("info dictionary: piece_hashes[%d] %w", i, err)
		}
	}
	if in.FileName == "" || SafeName(in.FileName) != in.FileName {
		return fmt.Errorf("info dictionary: file_name %q is not a safe file name", in.FileName)
	}
	if got := FullHash(in.PieceHashes); got != in.FullHash {
		return fmt.Errorf("info dictionary: piece hashes fold to %s, not to full_hash %s", got, in.FullHash)
	}
	return nil
}

// checkHash reports whether h is 40 lowercase hex characters.
func checkHash(h string) error {
	if len(h) != HashLen {
		return fmt.Errorf("%q is not %d hex characters", truncateForError(h), HashLen)
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%q is not lowercase hex", h)
		}
	}
	return nil
}

// ValidHash reports whether h has the form of a full or piece hash: 40
// lowercase hex characters.
func ValidHash(h string) bool { return checkHash(h) == nil }

func truncateForError(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// PieceSize returns the length in bytes of piece i: PiecesLength for all
// pieces but the last, which holds the remainder. It returns 0 for an index
// outside the file.
func (in *Info) PieceSize(i int) int {
	if i < 0 || i >= in.PiecesAmount {
		return 0
	}
	start := int64(i) * in.PiecesLength
	return int(min(in.PiecesLength, in.TotalLength-start))
}

// Clone returns a deep copy, so callers can hand out an Info without sharing
// its slice.
func (in *Info) Clone() *Info {
	c := *in
	c.PieceHashes = append([]string(nil), in.PieceHashes...)
	return &c
}

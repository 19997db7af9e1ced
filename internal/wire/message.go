package wire

import (
	"encoding/binary"
	"fmt"
)

// ID is a BEP 3 message id (0..255 on the wire; KeepAlive is -1).
type ID int

// Message ids used by p2pcdn. KeepAlive is not on the wire (a keep-alive is a
// zero-length message); it only labels decoded keep-alives.
const (
	Choke         ID = 0
	Unchoke       ID = 1
	Interested    ID = 2
	NotInterested ID = 3
	Have          ID = 4
	Bitfield      ID = 5
	Request       ID = 6
	Piece         ID = 7
	Cancel        ID = 8
	Extended      ID = 20
	KeepAlive     ID = -1
)

func (id ID) String() string {
	switch id {
	case Choke:
		return "choke"
	case Unchoke:
		return "unchoke"
	case Interested:
		return "interested"
	case NotInterested:
		return "not interested"
	case Have:
		return "have"
	case Bitfield:
		return "bitfield"
	case Request:
		return "request"
	case Piece:
		return "piece"
	case Cancel:
		return "cancel"
	case Extended:
		return "extended"
	case KeepAlive:
		return "keep-alive"
	}
	return fmt.Sprintf("message %d", int(id))
}

// Message is one decoded peer wire message. Which fields are meaningful
// depends on ID:
//   - Have: Index
//   - Request, Cancel: Index, Begin, Length
//   - Piece: Index, Begin, Payload (the block)
//   - Bitfield: Payload (MSB first)
//   - Extended: ExtID, Payload (the extension's bytes after the ext id)
//   - any other id the Reader does not know: Payload (raw)
//
// Payloads returned by Reader.ReadMessage alias the Reader's buffer and are
// valid only until the next call.
type Message struct {
	ID      ID
	Index   uint32
	Begin   uint32
	Length  uint32
	ExtID   uint8
	Payload []byte
}

// AppendMessage appends the length-prefixed encoding of m to dst.
func AppendMessage(dst []byte, m Message) []byte {
	switch m.ID {
	case KeepAlive:
		return binary.BigEndian.AppendUint32(dst, 0)
	case Choke, Unchoke, Interested, NotInterested:
		dst = binary.BigEndian.AppendUint32(dst, 1)
		return append(dst, byte(m.ID))
	case Have:
		dst = binary.BigEndian.AppendUint32(dst, 5)
		dst = append(dst, byte(m.ID))
		return binary.BigEndian.AppendUint32(dst, m.Index)
	case Request, Cancel:
		dst = binary.BigEndian.AppendUint32(dst, 13)
		dst = append(dst, byte(m.ID))
		dst = binary.BigEndian.AppendUint32(dst, m.Index)
		dst = binary.BigEndian.AppendUint32(dst, m.Begin)
		return binary.BigEndian.AppendUint32(dst, m.Length)
	case Piece:
		dst = AppendPieceHeader(dst, m.Index, m.Begin, len(m.Payload))
		return append(dst, m.Payload...)
	case Extended:
		dst = binary.BigEndian.AppendUint32(dst, uint32(2+len(m.Payload)))
		dst = append(dst, byte(m.ID), m.ExtID)
		return append(dst, m.Payload...)
	default: // Bitfield and raw messages
		dst = binary.BigEndian.AppendUint32(dst, uint32(1+len(m.Payload)))
		dst = append(dst, byte(m.ID))
		return append(dst, m.Payload...)
	}
}

// PieceHeaderLen is the size of a piece message before its block.
const PieceHeaderLen = 13

// AppendPieceHeader appends the header of a piece message whose block of n
// bytes the caller writes right after, so blocks need not be copied.
func AppendPieceHeader(dst []byte, index, begin uint32, n int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(9+n))
	dst = append(dst, byte(Piece))
	dst = binary.BigEndian.AppendUint32(dst, index)
	return binary.BigEndian.AppendUint32(dst, begin)
}

// BitfieldLen is the number of bytes of a bitfield for n pieces.
func BitfieldLen(n int) int { return (n + 7) / 8 }

// BitfieldHas reports whether bit i is set (MSB first). Out-of-range bits are
// unset.
func BitfieldHas(bf []byte, i int) bool {
	if i < 0 || i/8 >= len(bf) {
		return false
	}
	return bf[i/8]&(0x80>>(i%8)) != 0
}

// BitfieldSet sets bit i (MSB first); bf must be long enough.
func BitfieldSet(bf []byte, i int) { bf[i/8] |= 0x80 >> (i % 8) }

// CheckBitfield reports an error unless bf is exactly the bitfield of n pieces
// with its spare trailing bits clear, as BEP 3 requires.
func CheckBitfield(bf []byte, n int) error {
	if len(bf) != BitfieldLen(n) {
		return fmt.Errorf("bitfield is %d bytes, want %d for %d pieces", len(bf), BitfieldLen(n), n)
	}
	if n%8 != 0 && bf[len(bf)-1]&(0xff>>(n%8)) != 0 {
		return fmt.Errorf("bitfield sets bits past the last of %d pieces", n)
	}
	return nil
}

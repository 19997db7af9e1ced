package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Default limits; see Limits.
const (
	DefaultMaxBlock    = 256 << 10
	DefaultMaxExtended = 64 << 10
	DefaultMaxBitfield = 128 << 10 // 1,048,576 pieces: content.MaxPieces
)

// Limits bounds what a Reader accepts. Zero fields take the defaults.
type Limits struct {
	// MaxBlock bounds the block in a piece message. The default, 256 KiB,
	// admits the prototype's whole 200,000-byte pieces.
	MaxBlock int
	// MaxExtended bounds an extended message (and any unknown message).
	MaxExtended int
	// MaxBitfield bounds a bitfield while the piece count is unknown.
	MaxBitfield int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBlock <= 0 {
		l.MaxBlock = DefaultMaxBlock
	}
	if l.MaxExtended <= 0 {
		l.MaxExtended = DefaultMaxExtended
	}
	if l.MaxBitfield <= 0 {
		l.MaxBitfield = DefaultMaxBitfield
	}
	return l
}

// ErrTooLong is wrapped by errors about messages longer than the limits.
var ErrTooLong = errors.New("message too long")

// Reader decodes length-prefixed messages from a byte stream. Message
// boundaries of the underlying transport do not matter.
type Reader struct {
	r      *bufio.Reader
	lim    Limits
	pieces int // 0: unknown
	buf    []byte
}

// NewReader returns a Reader on r with the given limits.
func NewReader(r io.Reader, lim Limits) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 32<<10), lim: lim.withDefaults()}
}

// SetPieceCount tells the Reader how many pieces the file has, so bitfields
// must then be exactly that long.
func (r *Reader) SetPieceCount(n int) { r.pieces = n }

// ReadHandshake reads the 68-byte handshake; call it before ReadMessage.
func (r *Reader) ReadHandshake() (Handshake, error) { return ReadHandshake(r.r) }

// ReadMessage reads the next message. Payloads alias an internal buffer
// valid until the next call. io.EOF is returned only on a clean end between
// messages.
func (r *Reader) ReadMessage() (Message, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r.r, hdr[:4]); err != nil {
		if err == io.EOF {
			return Message{}, io.EOF
		}
		return Message{}, fmt.Errorf("reading message length: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 {
		return Message{ID: KeepAlive}, nil
	}
	b, err := r.r.ReadByte()
	if err != nil {
		return Message{}, fmt.Errorf("reading message id: %w", noEOF(err))
	}
	id := ID(b)
	if err := r.checkLen(id, n-1); err != nil {
		return Message{}, err
	}
	body := r.body(int(n - 1))
	if _, err := io.ReadFull(r.r, body); err != nil {
		return Message{}, fmt.Errorf("reading %v message of %d bytes: %w", id, n, noEOF(err))
	}
	return decodeBody(id, body)
}

// checkLen validates a body length before any of it is read, so an attacker
// cannot make us allocate or wait for more than the limits.
func (r *Reader) checkLen(id ID, n uint32) error {
	want := -1
	max := 0
	switch id {
	case Choke, Unchoke, Interested, NotInterested:
		want = 0
	case Have:
		want = 4
	case Request, Cancel:
		want = 12
	case Piece:
		if n < 8 {
			return fmt.Errorf("piece message body is %d bytes, too short for its header", n)
		}
		max = 8 + r.lim.MaxBlock
	case Bitfield:
		if r.pieces > 0 {
			want = BitfieldLen(r.pieces)
		} else {
			max = r.lim.MaxBitfield
		}
	case Extended:
		if n < 1 {
			return errors.New("extended message without an extended id")
		}
		max = 1 + r.lim.MaxExtended
	default:
		max = r.lim.MaxExtended
	}
	if want >= 0 && int64(n) != int64(want) {
		return fmt.Errorf("%v message body is %d bytes, want %d", id, n, want)
	}
	if want < 0 && int64(n) > int64(max) {
		return fmt.Errorf("%v message body of %d bytes exceeds the limit of %d: %w", id, n, max, ErrTooLong)
	}
	return nil
}

func (r *Reader) body(n int) []byte {
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	return r.buf[:n]
}

func decodeBody(id ID, b []byte) (Message, error) {
	m := Message{ID: id}
	be := binary.BigEndian
	switch id {
	case Have:
		m.Index = be.Uint32(b)
	case Request, Cancel:
		m.Index, m.Begin, m.Length = be.Uint32(b), be.Uint32(b[4:]), be.Uint32(b[8:])
	case Piece:
		m.Index, m.Begin, m.Payload = be.Uint32(b), be.Uint32(b[4:]), b[8:]
		m.Length = uint32(len(m.Payload))
	case Extended:
		m.ExtID, m.Payload = b[0], b[1:]
	case Choke, Unchoke, Interested, NotInterested:
	default:
		m.Payload = b
	}
	return m, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

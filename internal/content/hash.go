package content

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// expandChunk is how many input bytes PieceHasher widens at a time: small
// enough that the widened copy stays in the CPU cache.
const expandChunk = 16 << 10

// PieceHasher computes piece hashes with reusable buffers. It is not safe for
// concurrent use; give each goroutine its own.
type PieceHasher struct {
	h     hash.Hash
	chunk int    // input bytes widened at a time, at most expandChunk
	buf   []byte // widened bytes; 2*chunk plus slack for the 2-byte stores
	sum   [sha1.Size]byte
}

// NewPieceHasher returns a PieceHasher ready for use.
func NewPieceHasher() *PieceHasher { return newPieceHasher(expandChunk) }

// newPieceHasher returns a PieceHasher for pieces widened chunk bytes at a
// time (at most expandChunk).
func newPieceHasher(chunk int64) *PieceHasher {
	return &PieceHasher{h: sha1.New(), chunk: int(chunk), buf: make([]byte, 2*chunk+16)}
}

// Hash returns the prototype's hash of piece: lowercase hex SHA-1 over the
// bytes re-encoded as UTF-8 as if each byte were a code point (the prototype
// hashes a JavaScript string built with String.fromCharCode per byte). Bytes
// below 0x80 stay as they are; a byte b >= 0x80 becomes 0xC0|b>>6, 0x80|b&0x3F.
func (p *PieceHasher) Hash(piece []byte) string {
	p.h.Reset()
	for len(piece) > 0 {
		n := min(len(piece), p.chunk)
		p.h.Write(widen(p.buf, piece[:n]))
		piece = piece[n:]
	}
	return hex.EncodeToString(p.h.Sum(p.sum[:0]))
}

// widen writes the UTF-8 form of src (bytes as code points) into dst, which
// must hold 2*len(src)+16 bytes, and returns the used part. The bulk goes
// through SIMD where the CPU has it (widen_amd64.s); the rest through
// widenGo.
func widen(dst, src []byte) []byte {
	i, j := widenFast(dst, src)
	return widenGo(dst, src, i, j)
}

// widenGo widens src[i:] into dst[j:] in portable Go. An all-ASCII 8-byte
// word is copied as is. Otherwise each group of four bytes is assembled in a
// register from a 256-entry table and written with a single 8-byte store;
// output positions come from counting high bits, so no branch depends on the
// data.
func widenGo(dst, src []byte, i, j int) []byte {
	const lsb = 0x0101010101010101
	for ; i+8 <= len(src); i += 8 {
		w := binary.LittleEndian.Uint64(src[i:])
		if (w>>7)&lsb == 0 {
			binary.LittleEndian.PutUint64(dst[j:], w)
			j += 8
			continue
		}
		j = widen4(dst, j, uint32(w))
		j = widen4(dst, j, uint32(w>>32))
	}
	for ; i < len(src); i++ {
		b := src[i]
		binary.LittleEndian.PutUint16(dst[j:], widenTable[b])
		j += 1 + int(b>>7)
	}
	return dst[:j]
}

// widen4 writes the encoding of the four bytes of w (little-endian order) at
// dst[j:], always storing 8 bytes (the unused tail is scratch that later
// stores overwrite), and returns the next position.
func widen4(dst []byte, j int, w uint32) int {
	b0, b1, b2, b3 := byte(w), byte(w>>8), byte(w>>16), byte(w>>24)
	p0 := uint64(widenTable[b0]) | uint64(widenTable[b1])<<(8+8*(b0>>7))
	p1 := uint64(widenTable[b2]) | uint64(widenTable[b3])<<(8+8*(b2>>7))
	n0 := 2 + int(b0>>7) + int(b1>>7)
	binary.LittleEndian.PutUint64(dst[j:], p0|p1<<(8*n0))
	return j + n0 + 2 + int(b2>>7) + int(b3>>7)
}

// widenTable holds each byte's UTF-8 encoding as a little-endian uint16
// (high byte 0 for ASCII). Built once at init, never written afterwards.
var widenTable = func() (t [256]uint16) {
	for b := range 256 {
		if b < 0x80 {
			t[b] = uint16(b)
		} else {
			t[b] = uint16(0xC0|b>>6) | uint16(0x80|b&0x3F)<<8
		}
	}
	return t
}()

// PieceHash returns the prototype's hash of one piece (see PieceHasher.Hash).
func PieceHash(piece []byte) string {
	return NewPieceHasher().Hash(piece)
}

// FullHash folds piece hashes into the full hash the prototype computes: a
// Merkle tree over the hex strings, level by level, where a parent is
// hex(SHA-1(leftHex + rightHex)) and an odd last node is paired with the
// literal text "undefined" (a JavaScript quirk kept for compatibility). A
// single hash is its own root; no hashes give "".
func FullHash(pieceHashes []string) string {
	levels := MerkleLevels(pieceHashes)
	if len(levels) == 0 {
		return ""
	}
	return levels[len(levels)-1][0]
}

// MerkleLevels returns every level of the fold FullHash performs, leaves
// first, root last.
func MerkleLevels(pieceHashes []string) [][]string {
	if len(pieceHashes) == 0 {
		return nil
	}
	levels := [][]string{pieceHashes}
	var buf []byte
	var sum [sha1.Size]byte
	level := pieceHashes
	for len(level) > 1 {
		next := make([]string, 0, (len(level)+1)/2)
		for i := 0; i < len(level); i += 2 {
			buf = append(buf[:0], level[i]...)
			if i+1 < len(level) {
				buf = append(buf, level[i+1]...)
			} else {
				buf = append(buf, "undefined"...)
			}
			sum = sha1.Sum(buf)
			next = append(next, hex.EncodeToString(sum[:]))
		}
		levels = append(levels, next)
		level = next
	}
	return levels
}

package wire

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
)

// HandshakeLen is the size of the BEP 3 handshake on the wire.
const HandshakeLen = 68

const protocolName = "BitTorrent protocol"

// Handshake is the first message each side sends.
type Handshake struct {
	Reserved [8]byte
	InfoHash [20]byte
	PeerID   [20]byte
}

// NewHandshake returns our handshake: only the extension-protocol bit set in
// the reserved bytes, as the prototype does (00 00 00 00 00 10 00 00).
func NewHandshake(infoHash, peerID [20]byte) Handshake {
	h := Handshake{InfoHash: infoHash, PeerID: peerID}
	h.Reserved[5] = 0x10
	return h
}

// SupportsExtensions reports whether the remote set the BEP 10 bit.
func (h Handshake) SupportsExtensions() bool { return h.Reserved[5]&0x10 != 0 }

// AppendHandshake appends the 68-byte encoding of h to dst.
func AppendHandshake(dst []byte, h Handshake) []byte {
	dst = append(dst, byte(len(protocolName)))
	dst = append(dst, protocolName...)
	dst = append(dst, h.Reserved[:]...)
	dst = append(dst, h.InfoHash[:]...)
	return append(dst, h.PeerID[:]...)
}

// ParseHandshake decodes a 68-byte handshake.
func ParseHandshake(b []byte) (Handshake, error) {
	var h Handshake
	if len(b) != HandshakeLen {
		return h, fmt.Errorf("handshake is %d bytes, want %d", len(b), HandshakeLen)
	}
	if b[0] != byte(len(protocolName)) || !bytes.Equal(b[1:20], []byte(protocolName)) {
		return h, fmt.Errorf("handshake does not start with %q: not a BitTorrent peer", protocolName)
	}
	copy(h.Reserved[:], b[20:28])
	copy(h.InfoHash[:], b[28:48])
	copy(h.PeerID[:], b[48:68])
	return h, nil
}

// ReadHandshake reads exactly one handshake from r.
func ReadHandshake(r io.Reader) (Handshake, error) {
	var buf [HandshakeLen]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return Handshake{}, fmt.Errorf("reading handshake: %w", err)
	}
	return ParseHandshake(buf[:])
}

// DecodeID turns a 40-hex-character id (a full hash or a peer id) into the 20
// bytes the handshake carries.
func DecodeID(s string) ([20]byte, error) {
	var id [20]byte
	if len(s) != 40 {
		return id, fmt.Errorf("id %.50q is %d characters, want 40 hex digits", s, len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("id %q is not hex: %w", s, err)
	}
	return id, nil
}

// EncodeID is the inverse of DecodeID: lowercase hex.
func EncodeID(id [20]byte) string { return hex.EncodeToString(id[:]) }

package iceserver

import "encoding/binary"

// magicCookie is the fixed STUN header word at bytes 4..8 (RFC 8489).
const magicCookie = 0x2112A442

// stunHeaderLen is the size of a STUN message header.
const stunHeaderLen = 20

// kind is what a datagram on the shared UDP port is.
type kind uint8

const (
	kindUnknown     kind = iota
	kindSTUN             // a STUN message (binding or TURN)
	kindChannelData      // TURN ChannelData
	kindKRPC             // a DHT message (bencoded dictionary)
)

func (k kind) String() string {
	switch k {
	case kindSTUN:
		return "stun"
	case kindChannelData:
		return "channel_data"
	case kindKRPC:
		return "dht"
	}
	return "unknown"
}

// classify tells a datagram's kind by its first bytes, as RFC 7983 does. It
// checks only what tells kinds apart; the receiver validates the rest.
//
// 'd' (0x64) is also a ChannelData first byte (browsers pick channel numbers
// anywhere in 0x4000..0x7FFF). A KRPC message starts with 'd', a digit and
// ':' (its first key's length); as ChannelData that would claim at least
// 0x3A00 = 14848 bytes of data, more than any relayed datagram carries, so
// the two never overlap.
func classify(b []byte) kind {
	if len(b) == 0 {
		return kindUnknown
	}
	switch c := b[0]; {
	case c < 0x40: // top bits 00: STUN, if the cookie is there
		if isSTUN(b) {
			return kindSTUN
		}
	case c <= 0x7F:
		if c == 'd' && len(b) >= 3 && '0' <= b[1] && b[1] <= '9' && b[2] == ':' {
			return kindKRPC
		}
		if len(b) >= 4 && int(binary.BigEndian.Uint16(b[2:4])) <= len(b)-4 {
			return kindChannelData
		}
	}
	return kindUnknown
}

// isSTUN reports whether b has a STUN header whose length field fits b:
// top bits 00, the magic cookie, a length that is a multiple of 4.
func isSTUN(b []byte) bool {
	if len(b) < stunHeaderLen || b[0]&0xC0 != 0 {
		return false
	}
	if binary.BigEndian.Uint32(b[4:8]) != magicCookie {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	return n%4 == 0 && stunHeaderLen+n == len(b)
}

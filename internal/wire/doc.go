// Package wire encodes and decodes the BitTorrent peer wire (BEP 3) as p2pcdn
// speaks it over a WebRTC data channel, the extension protocol handshake
// (BEP 10), and p2pcdn's own p2pcdn_info extension (docs/extensions.md).
//
// It is a pure codec: no goroutines, no connection management. Every decoder
// bounds what it accepts, so it can be fed untrusted bytes from the network.
package wire

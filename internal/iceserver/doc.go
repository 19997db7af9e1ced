// Package iceserver is the mediator's STUN and TURN server: STUN binding
// (RFC 8489) so peers learn their public address, and, when enabled, a TURN
// relay (RFC 8656, built on pion/turn) for peers no direct path connects.
//
// Pieces, each usable alone:
//
//   - Demux splits one UDP socket between STUN/TURN and the DHT, so a
//     mediator needs one UDP port (RFC 7983's first-byte rules: STUN has the
//     two top bits 00 and the magic cookie, TURN ChannelData starts with
//     0x40..0x7F, KRPC with 'd').
//   - Server answers STUN binding requests on its UDP socket and, with TURN
//     on, relays for peers holding credentials this server issued (the "TURN
//     REST API" scheme of docs/extensions.md), over UDP, TCP and TLS.
//
// The relay is never open: every allocation needs fresh credentials, which
// the mediator hands only to its connected peers; allocations are capped per
// peer id, per client IP and in total; relayed bytes are rate limited; and
// relaying toward loopback, link-local, unspecified, multicast, private
// addresses (unless allowed) and the server's own ports is refused.
package iceserver

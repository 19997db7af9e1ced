package iceserver

import (
	"net"
	"net/netip"

	"github.com/pion/stun/v4"
)

// udpFront sits between the UDP socket and pion/turn's read loop. It answers
// STUN binding requests itself (so they are counted and rate limited), drops
// and counts what is neither STUN nor ChannelData, and hands TURN traffic on
// only when TURN is on. With TURN off, Server.Run's own loop drives it and
// nothing is ever handed on.
type udpFront struct {
	net.PacketConn
	s *Server
}

// ReadFrom returns the next TURN message or ChannelData.
func (f *udpFront) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := f.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if f.handle(p[:n], addr) {
			return n, addr, nil
		}
	}
}

// handle deals with one datagram and reports whether it is for TURN.
func (f *udpFront) handle(b []byte, addr net.Addr) bool {
	s := f.s
	switch classify(b) {
	case kindChannelData:
		if s.cfg.TURN {
			return true
		}
		s.metrics.refuse(refuseTURNOff)
		return false
	case kindSTUN:
	default:
		s.metrics.malformed.Inc()
		return false
	}
	// Message type: class bits 0x0110, method the rest (RFC 8489 section 5).
	typ := uint16(b[0])<<8 | uint16(b[1])
	if typ == stun.BindingRequest.Value() {
		if !s.cfg.NoSTUN {
			f.answerBinding(b, addr)
		}
		return false
	}
	if typ == stun.NewType(stun.MethodBinding, stun.ClassIndication).Value() {
		return false // keepalive: nothing to answer
	}
	if s.cfg.TURN {
		return true
	}
	s.metrics.refuse(refuseTURNOff)
	return false
}

// answerBinding sends a binding success response with the sender's address
// (XOR-MAPPED-ADDRESS) and a FINGERPRINT. The response is at most twice the
// smallest request, so spoofed senders gain little from reflecting through
// us, and the binding rate limit caps it.
func (f *udpFront) answerBinding(b []byte, addr net.Addr) {
	s := f.s
	req := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := req.Decode(); err != nil {
		s.metrics.malformed.Inc()
		return
	}
	if req.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(req) != nil {
		s.metrics.malformed.Inc()
		return
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		s.metrics.malformed.Inc()
		return
	}
	if !s.bindingLimit.Allow() {
		s.metrics.bindingsDropped.Inc()
		return
	}
	resp, err := stun.Build(
		stun.NewTransactionIDSetter(req.TransactionID),
		stun.BindingSuccess,
		&stun.XORMappedAddress{IP: ap.Addr().Unmap().AsSlice(), Port: int(ap.Port())},
		stun.Fingerprint,
	)
	if err != nil {
		s.metrics.malformed.Inc()
		return
	}
	if _, err := f.PacketConn.WriteTo(resp.Raw, addr); err == nil {
		s.metrics.bindings.Inc()
	}
}

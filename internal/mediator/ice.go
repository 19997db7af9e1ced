package mediator

import (
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
)

// ICEProvider hands the mediator's peers STUN and TURN servers
// (docs/extensions.md, "Mediator capabilities and ICE servers"). The server
// calls it from connection handlers, so it must be quick and safe for
// concurrent use.
type ICEProvider interface {
	// ICEServers returns the servers peer should use, named by host (the
	// HTTP Host, host or host:port, the peer reached the mediator by), and
	// when their credentials expire (the zero time when none do).
	ICEServers(peerID, host string) (servers []mediation.ICEServer, expires time.Time)
}

// capabilities is the argument of established toward a MEDIATION peer.
func (h *conn) capabilities() *mediation.Capabilities {
	c := &mediation.Capabilities{P2PCDN: mediation.ExtensionLevel, Batch: h.s.lim.batch}
	c.ICEServers, c.ICEExpires = h.iceServers()
	return c
}

func (h *conn) iceServers() ([]mediation.ICEServer, int64) {
	if h.s.ICE == nil || h.self == nil {
		return nil, 0
	}
	servers, expires := h.s.ICE.ICEServers(h.self.id, h.c.Host())
	var exp int64
	if !expires.IsZero() {
		exp = expires.Unix()
	}
	return servers, exp
}

// answerICE answers get_ice_servers with fresh servers and credentials.
func (h *conn) answerICE() bool {
	servers, exp := h.iceServers()
	return h.s.emit(h.c, mediation.ICEServers{Servers: servers, Expires: exp}) == nil
}

// established accepts the handshake: with our capabilities toward a peer,
// in the prototype's form (no argument) toward another mediator.
func (h *conn) established() mediation.Established {
	if h.self == nil {
		return mediation.Established{}
	}
	return mediation.Established{Caps: h.capabilities()}
}

package mediatorclient

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// iceRetry spaces get_ice_servers questions that got no answer.
const iceRetry = 30 * time.Second

// caps is what a mediator of ours said about itself in "established".
type caps struct {
	level      int
	batch      int
	ice        []webrtc.ICEServer
	iceExpires time.Time // zero: the servers do not expire
}

// parseCaps reads established's arguments: none from a prototype mediator
// (nil), one capabilities object from ours. An argument that does not decode
// is treated as the prototype's form, so a mediator we do not understand only
// gets the prototype's events.
func parseCaps(args []json.RawMessage, log *slog.Logger) *caps {
	m, err := mediation.Decode(mediation.EventEstablished, args)
	if err != nil {
		log.Warn("the mediator's capabilities do not decode; speaking the prototype's contract only", "err", err)
		return nil
	}
	c := m.(mediation.Established).Caps
	if c == nil {
		return nil
	}
	return &caps{
		level:      c.P2PCDN,
		batch:      c.Batch,
		ice:        validICE(c.ICEServers, log),
		iceExpires: unixTime(c.ICEExpires),
	}
}

func unixTime(s int64) time.Time {
	if s <= 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

// validICE keeps the servers a WebRTC stack will take: pion refuses a whole
// peer connection for one bad URL or a TURN server without credentials, so
// such entries are dropped here rather than break every connection.
func validICE(in []mediation.ICEServer, log *slog.Logger) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for i, s := range in {
		if why := checkICEServer(s); why != "" {
			log.Warn("ignoring an ICE server from the mediator", "index", i, "why", why)
			continue
		}
		srv := webrtc.ICEServer{URLs: slices.Clone(s.URLs)}
		if s.Username != "" || s.Credential != "" {
			srv.Username, srv.Credential = s.Username, s.Credential
			srv.CredentialType = webrtc.ICECredentialTypePassword
		}
		out = append(out, srv)
	}
	return out
}

// checkICEServer says what pion would refuse in s, or "". Sizes are
// bounded by the decoder already.
func checkICEServer(s mediation.ICEServer) string {
	for _, u := range s.URLs {
		uri, err := stun.ParseURI(u)
		if err != nil {
			return "bad url: " + err.Error()
		}
		if (uri.Scheme == stun.SchemeTypeTURN || uri.Scheme == stun.SchemeTypeTURNS) && (s.Username == "" || s.Credential == "") {
			return "TURN url without credentials"
		}
	}
	return ""
}

// iceState is the mediator's current ICE servers.
type iceState struct {
	servers  []webrtc.ICEServer
	expires  time.Time // zero: no expiry
	received time.Time
}

// refreshAt is when to ask for fresh servers: three quarters into their
// lifetime as we saw it, so a skewed clock shifts it but never makes it spin.
func (s iceState) refreshAt() time.Time {
	if s.expires.IsZero() {
		return time.Time{}
	}
	life := s.expires.Sub(s.received)
	if life <= 0 {
		return s.received.Add(iceRetry)
	}
	return s.received.Add(life * 3 / 4)
}

// ICEServers returns the STUN/TURN servers the mediator handed out on the
// current connection (none from a prototype mediator, or while
// reconnecting), for use in addition to the peer's own. The credentials are
// kept fresh while the client is connected. Safe for concurrent use; the
// result is a copy.
func (c *Client) ICEServers() []webrtc.ICEServer {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]webrtc.ICEServer, len(c.ice.servers))
	for i, s := range c.ice.servers {
		s.URLs = slices.Clone(s.URLs)
		out[i] = s
	}
	return out
}

// onICEServers takes the mediator's answer to get_ice_servers.
func (c *Client) onICEServers(m mediation.ICEServers) {
	servers := validICE(m.Servers, c.log)
	c.mu.Lock()
	if c.caps == nil {
		c.mu.Unlock()
		return // never asked: not a mediator of ours
	}
	c.ice = iceState{servers: servers, expires: unixTime(m.Expires), received: time.Now()}
	poke := c.iceAnswer
	c.mu.Unlock()
	select {
	case poke <- struct{}{}:
	default:
	}
}

// iceRefresher asks for fresh ICE servers before the current ones expire,
// every iceRetry until an answer comes.
func (c *Client) iceRefresher(ctx context.Context, conn *socketio.Conn, answered <-chan struct{}) {
	var asked time.Time
	for {
		c.mu.Lock()
		at := c.ice.refreshAt()
		c.mu.Unlock()
		if !at.IsZero() {
			at = latest(at, asked.Add(iceRetry))
		}
		if !sleepUntil(ctx, at, answered) {
			if ctx.Err() != nil {
				return
			}
			continue // fresh servers came: schedule anew
		}
		asked = time.Now()
		if err := c.send(ctx, conn, mediation.GetICEServers{}); err != nil {
			return // the session notices the closed connection
		}
	}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// sleepUntil waits until at (forever if zero) and reports true, or returns
// false early when ctx ends or interrupt fires.
func sleepUntil(ctx context.Context, at time.Time, interrupt <-chan struct{}) bool {
	var wake <-chan time.Time
	if !at.IsZero() {
		t := time.NewTimer(time.Until(at))
		defer t.Stop()
		wake = t.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-interrupt:
		return false
	case <-wake:
		return true
	}
}

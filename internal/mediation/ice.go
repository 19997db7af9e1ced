package mediation

import (
	"encoding/json"
	"fmt"
)

// Events of the "Mediator capabilities and ICE servers" extension
// (docs/extensions.md); prototype peers and mediators never send them.
const (
	EventGetICEServers = "get_ice_servers"
	EventICEServers    = "ice_servers"
)

// ExtensionLevel is the p2pcdn extension level our mediators announce in
// established.
const ExtensionLevel = 1

// Limits of the ICE server codecs. Real lists hold a STUN entry and a TURN
// entry with three or four URLs; the bounds only keep a hostile mediator from
// handing a peer thousands of servers to try.
const (
	MaxICEServers     = 16
	MaxICEURLs        = 8
	MaxICEStringBytes = 512 // one URL, username or credential
)

// ICEServer is one STUN or TURN server as a WebRTC RTCIceServer dictionary.
// URLs is always an array on the wire.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Capabilities is the argument of established from a mediator of ours.
type Capabilities struct {
	// P2PCDN is the extension level (ExtensionLevel); at least 1 when the
	// argument is present.
	P2PCDN int `json:"p2pcdn"`
	// Batch is the most hashes one batch event may carry; 0 means none.
	Batch int `json:"batch,omitempty"`
	// ICEServers are STUN and TURN servers the peer should use in addition
	// to its own; ICEExpires is when their TURN credentials expire (unix
	// seconds, 0 when there are none).
	ICEServers []ICEServer `json:"ice_servers,omitempty"`
	ICEExpires int64       `json:"ice_expires,omitempty"`
}

// GetICEServers asks the mediator for fresh ICE servers (TURN credentials).
type GetICEServers struct{}

// ICEServers answers GetICEServers.
type ICEServers struct {
	Servers []ICEServer `json:"ice_servers"`
	Expires int64       `json:"ice_expires,omitempty"`
}

func (GetICEServers) Event() string { return EventGetICEServers }
func (ICEServers) Event() string    { return EventICEServers }

func (GetICEServers) Args() []any { return nil }

// Args never encodes a nil list as null.
func (m ICEServers) Args() []any {
	if m.Servers == nil {
		m.Servers = []ICEServer{}
	}
	return []any{m}
}

// established decodes established: no argument from a prototype mediator,
// one capabilities object from ours.
func (d *decoder) established() (Message, error) {
	if len(d.args) == 0 {
		return Established{}, nil
	}
	if len(d.args) > 1 {
		return nil, &DecodeError{Event: d.event, Err: fmt.Errorf("want 0 or 1 arguments, got %d", len(d.args))}
	}
	const what = "capabilities"
	raw := d.args[0]
	if k := kind(raw); k != "an object" {
		return nil, d.fail(1, what, "want an object, got %s", k)
	}
	var c Capabilities
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, d.fail(1, what, "malformed: %w", err)
	}
	if c.P2PCDN < 1 {
		return nil, d.fail(1, what, "p2pcdn: want a level of at least 1, got %d", c.P2PCDN)
	}
	if c.Batch < 0 {
		return nil, d.fail(1, what, "batch: want at least 0, got %d", c.Batch)
	}
	if err := checkICE(c.ICEServers, c.ICEExpires); err != nil {
		return nil, d.fail(1, what, "%w", err)
	}
	if len(c.ICEServers) == 0 {
		c.ICEServers = nil // absent and empty mean the same
	}
	return Established{Caps: &c}, nil
}

// getICEServers and iceServers decode the two ICE events.
func (d *decoder) getICEServers() (Message, error) {
	if err := d.count(0); err != nil {
		return nil, err
	}
	return GetICEServers{}, nil
}

func (d *decoder) iceServers() (Message, error) {
	if err := d.count(1); err != nil {
		return nil, err
	}
	const what = "ice servers"
	raw := d.args[0]
	if k := kind(raw); k != "an object" {
		return nil, d.fail(1, what, "want an object, got %s", k)
	}
	var m ICEServers
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, d.fail(1, what, "malformed: %w", err)
	}
	if err := checkICE(m.Servers, m.Expires); err != nil {
		return nil, d.fail(1, what, "%w", err)
	}
	if m.Servers == nil {
		m.Servers = []ICEServer{}
	}
	return m, nil
}

// checkICE bounds a decoded server list. Scheme and syntax of the URLs are
// the WebRTC stack's to judge; here only sizes and emptiness.
func checkICE(servers []ICEServer, expires int64) error {
	if len(servers) > MaxICEServers {
		return fmt.Errorf("ice_servers: %d servers is more than the %d allowed", len(servers), MaxICEServers)
	}
	if expires < 0 {
		return fmt.Errorf("ice_expires: want unix seconds, got %d", expires)
	}
	for i, s := range servers {
		if len(s.URLs) == 0 || len(s.URLs) > MaxICEURLs {
			return fmt.Errorf("ice_servers[%d]: want 1 to %d urls, got %d", i, MaxICEURLs, len(s.URLs))
		}
		for j, u := range s.URLs {
			if u == "" || len(u) > MaxICEStringBytes {
				return fmt.Errorf("ice_servers[%d].urls[%d]: want 1 to %d bytes, got %d", i, j, MaxICEStringBytes, len(u))
			}
		}
		if len(s.Username) > MaxICEStringBytes || len(s.Credential) > MaxICEStringBytes {
			return fmt.Errorf("ice_servers[%d]: username or credential longer than %d bytes", i, MaxICEStringBytes)
		}
	}
	return nil
}

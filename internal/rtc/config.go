package rtc

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

// Defaults measured with the benchmarks in bench_test.go on a 2-core machine over loopback; see doc.go.
const (
	// DefaultMaxMessageSize is the largest data-channel message we advertise and accept. Chromium offers
	// 262144 and the prototype sends 200,000-byte blocks as single messages, so this must not be smaller.
	DefaultMaxMessageSize = 262144
	// DefaultWriteChunk is the largest message Conn.Write sends. Messages are a quarter of the send
	// window when that is smaller: 16 KiB in the 64 KiB window toward a browser, 64 KiB toward our own
	// peers (see doc.go).
	DefaultWriteChunk = 64 << 10
	// DefaultHighWater is the most bytes Write keeps queued or unacknowledged (the send window's cap).
	DefaultHighWater = 1 << 20
	// DefaultMinWindow is the send window on a short path toward a peer that does not say what its socket
	// holds (a browser). Chromium reads each peer connection from a UDP socket with a 128 KiB buffer
	// (SO_RCVBUF 64 KiB, doubled by Linux), about 55 of our packets; unpaced bursts larger than that are
	// dropped by its kernel, and pion recovers lost retransmissions slowly (see doc.go). 64 KiB stays
	// below it. Our native peers advertise their sockets' size, and the window toward them starts at half
	// of it, up to HighWater.
	DefaultMinWindow = 64 << 10
	// DefaultWindowRate scales the window with the path's smallest round-trip time, so long paths still
	// get a bandwidth-delay product: 16 MiB/s reaches DefaultHighWater at a 64 ms round trip.
	DefaultWindowRate = 16 << 20
	// DefaultSCTPReceiveBuffer is the SCTP receive window we advertise.
	DefaultSCTPReceiveBuffer = 4 << 20
	// DefaultSocketBuffer is SO_RCVBUF/SO_SNDBUF for ICE UDP sockets (the kernel caps it at rmem_max).
	DefaultSocketBuffer = 4 << 20
	// DefaultSCTPMinCwnd is the smallest (and so the initial) SCTP congestion window: pion starts at 4
	// packets (4.9 KB) and grows only while data waits beyond the window, so across a WAN a 1 MB transfer
	// spent most of its time in slow start.
	DefaultSCTPMinCwnd = 64 << 10
	// DefaultSCTPRTOMax is pion's default (60 s).
	DefaultSCTPRTOMax = 60 * time.Second
)

// Environment variables read by ConfigFromEnv.
const (
	EnvICEServers  = "P2PCDN_ICE_SERVERS"
	EnvICELoopback = "P2PCDN_ICE_LOOPBACK"
)

// Config configures a Transport. The zero value is usable: no ICE servers (nothing reaches the internet by
// itself), all local interfaces, measured defaults for the tuning knobs.
type Config struct {
	// ICEServers are STUN/TURN servers. Default none.
	ICEServers []webrtc.ICEServer
	// ExtraICEServers, if set, is called for each new peer connection and its servers are used after
	// ICEServers: servers learned at run time, such as a mediator's TURN relay whose credentials expire.
	// It must be safe for concurrent use and should return quickly (it is called while connecting).
	ExtraICEServers func() []webrtc.ICEServer
	// ICETCPListener, if set, accepts ICE over TCP (RFC 6544 passive candidates on its port), so that
	// peers whose network drops UDP can reach this one directly. The Transport owns it from New on and
	// closes it on Close.
	ICETCPListener net.Listener
	// Loopback restricts ICE to UDP4 on loopback addresses: only loopback local candidates, remote
	// candidates other than loopback dropped, mDNS off. For tests and single-host use.
	Loopback bool
	// Net, if set, replaces the operating system's network (tests: a simulated internet on pion's
	// vnet, see internal/testing/simnet). mDNS is then off.
	Net transport.Net
	// Logger receives connection logs; nil means slog.Default().
	Logger *slog.Logger

	// MaxMessageSize is the largest data-channel message advertised (a=max-message-size) and accepted.
	// 0 means DefaultMaxMessageSize; values below 262144 are raised to it for Chromium compatibility.
	MaxMessageSize int
	// WriteChunk is the largest message Conn.Write sends (a quarter of the send window when that is
	// smaller); 0 means DefaultWriteChunk.
	WriteChunk int
	// Write keeps at most a window of bytes queued or unacknowledged (the data channel's
	// bufferedAmount): the smallest round-trip time seen times WindowRate (bytes per second), at least
	// MinWindow (or half the socket buffer a peer of ours advertised) and at most HighWater. A small
	// window on short paths keeps the bursts that arrive at once within what a browser's socket holds;
	// on long paths the network spaces packets out. 0 means the defaults; MinWindow is at least 8 KiB
	// and HighWater at least MinWindow.
	HighWater, MinWindow, WindowRate int
	// SCTPReceiveBuffer is the SCTP receive window; 0 means DefaultSCTPReceiveBuffer.
	SCTPReceiveBuffer int
	// SocketBuffer is SO_RCVBUF/SO_SNDBUF for the ICE UDP sockets; 0 means DefaultSocketBuffer, -1 leaves
	// the operating system's default.
	SocketBuffer int
	// SCTPRTOMax caps SCTP's retransmission timeout backoff; 0 means DefaultSCTPRTOMax.
	SCTPRTOMax time.Duration
	// SCTPMinCwnd is SCTP's initial and smallest congestion window in bytes; 0 means DefaultSCTPMinCwnd.
	SCTPMinCwnd int

	// tune, if set, adjusts pion's settings after ours (benchmarks compare variants with it).
	tune func(*webrtc.SettingEngine)
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxMessageSize < DefaultMaxMessageSize {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.WriteChunk <= 0 {
		c.WriteChunk = DefaultWriteChunk
	}
	// A chunk larger than the remote's limit would kill a Chromium connection; 64 KiB is always safe.
	c.WriteChunk = min(c.WriteChunk, 64<<10)
	if c.HighWater <= 0 {
		c.HighWater = DefaultHighWater
	}
	if c.MinWindow <= 0 {
		c.MinWindow = DefaultMinWindow
	}
	// Write waits for the buffered amount to fall below half the window; with messages of at most half
	// the window (chunkFor) that crossing always comes.
	c.MinWindow = max(c.MinWindow, 2*minChunk)
	c.HighWater = max(c.HighWater, c.MinWindow)
	if c.WindowRate <= 0 {
		c.WindowRate = DefaultWindowRate
	}
	if c.SCTPReceiveBuffer <= 0 {
		c.SCTPReceiveBuffer = DefaultSCTPReceiveBuffer
	}
	if c.SCTPRTOMax <= 0 {
		c.SCTPRTOMax = DefaultSCTPRTOMax
	}
	if c.SCTPMinCwnd <= 0 {
		c.SCTPMinCwnd = DefaultSCTPMinCwnd
	}
	if c.SocketBuffer == 0 {
		c.SocketBuffer = DefaultSocketBuffer
	}
	return c
}

// ParseICEServers parses the --ice-server flag or P2PCDN_ICE_SERVERS value: comma-separated URLs.
//
//	stun:host:3478
//	stuns:host:5349
//	turn:user:pass@host:3478
//	turn:user:pass@host:3478?transport=tcp
//	turns:user:pass@host:5349
//
// TURN URLs need credentials written as user:password@ before the host; both parts are percent-decoded,
// so a ':' in the user or a ',' in either is written %3A / %2C (an '@' in the password may stay as is:
// the last '@' separates the host). STUN URLs take no credentials. Empty entries are ignored; an empty
// string means no servers.
func ParseICEServers(s string) ([]webrtc.ICEServer, error) {
	var servers []webrtc.ICEServer
	for _, raw := range strings.Split(s, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		srv, err := parseICEServer(raw)
		if err != nil {
			return nil, err
		}
		servers = append(servers, srv)
	}
	return servers, nil
}

func parseICEServer(raw string) (webrtc.ICEServer, error) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok {
		return webrtc.ICEServer{}, fmt.Errorf("ICE server %q: missing scheme, want stun:host:port or turn:user:pass@host:port", raw)
	}
	scheme = strings.ToLower(scheme)
	var user, pass string
	hasCred := false
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		hasCred = true
		u, p, ok := strings.Cut(rest[:at], ":")
		if !ok {
			return webrtc.ICEServer{}, fmt.Errorf("ICE server %q: credentials must be user:password@", raw)
		}
		var err error
		if user, err = url.PathUnescape(u); err != nil {
			return webrtc.ICEServer{}, fmt.Errorf("ICE server %q: user name: %w", raw, err)
		}
		if pass, err = url.PathUnescape(p); err != nil {
			return webrtc.ICEServer{}, fmt.Errorf("ICE server %q: password: %w", raw, err)
		}
		rest = rest[at+1:]
	}
	bare := scheme + ":" + rest
	uri, err := stun.ParseURI(bare)
	if err != nil {
		return webrtc.ICEServer{}, fmt.Errorf("ICE server %q: %w", raw, err)
	}
	if uri.Host == "" {
		return webrtc.ICEServer{}, fmt.Errorf("ICE server %q: missing host", raw)
	}
	srv := webrtc.ICEServer{URLs: []string{bare}}
	switch uri.Scheme {
	case stun.SchemeTypeSTUN, stun.SchemeTypeSTUNS:
		if hasCred {
			return webrtc.ICEServer{}, fmt.Errorf("ICE server %q: STUN servers take no credentials", raw)
		}
	case stun.SchemeTypeTURN, stun.SchemeTypeTURNS:
		if !hasCred || user == "" {
			return webrtc.ICEServer{}, fmt.Errorf("ICE server %q: TURN needs credentials: turn:user:password@host:port", raw)
		}
		srv.Username = user
		srv.Credential = pass
		srv.CredentialType = webrtc.ICECredentialTypePassword
	default:
		return webrtc.ICEServer{}, fmt.Errorf("ICE server %q: unsupported scheme %q", raw, scheme)
	}
	return srv, nil
}

// ConfigFromEnv returns base with ICEServers replaced by P2PCDN_ICE_SERVERS when that is set and non-empty
// (see ParseICEServers), and Loopback set when P2PCDN_ICE_LOOPBACK is a true value ("1", "true").
func ConfigFromEnv(base Config) (Config, error) {
	if v := strings.TrimSpace(os.Getenv(EnvICEServers)); v != "" {
		servers, err := ParseICEServers(v)
		if err != nil {
			return base, fmt.Errorf("%s: %w", EnvICEServers, err)
		}
		base.ICEServers = servers
	}
	if v := strings.TrimSpace(os.Getenv(EnvICELoopback)); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return base, fmt.Errorf("%s=%q: want 1 or 0", EnvICELoopback, v)
		}
		if on {
			base.Loopback = true
		}
	}
	return base, nil
}

// WithICEServers returns c with servers' servers used after those it has: a
// source learned at run time, such as a mediator handing out STUN/TURN servers
// with fresh credentials for each connection.
func (c Config) WithICEServers(servers func() []webrtc.ICEServer) Config {
	own := c.ExtraICEServers
	c.ExtraICEServers = func() []webrtc.ICEServer {
		if own == nil {
			return servers()
		}
		return append(own(), servers()...)
	}
	return c
}

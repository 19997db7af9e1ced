package iceserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
)

// Defaults for Config's zero values.
const (
	DefaultCredentialTTL         = 12 * time.Hour
	DefaultMaxAllocations        = 1000
	DefaultMaxAllocationsPerIP   = 64
	DefaultMaxAllocationsPerPeer = 32
	DefaultRelayBytesPerSecond   = 100_000_000 / 8 // 100 Mbit/s over all allocations
	DefaultBindingRate           = 2000            // STUN binding answers per second
	DefaultMaxStreamConns        = 1024            // TURN connections over TCP and TLS
	// StreamIdleTimeout closes a TURN connection over TCP or TLS that sent
	// nothing for this long: longer than an allocation lives unrefreshed.
	StreamIdleTimeout = 11 * time.Minute
)

// Realm is the TURN realm of our credentials.
const Realm = "p2pcdn"

// Config configures a Server. PacketConn is required; the zero value of every
// other field is a STUN-only server with the defaults above.
type Config struct {
	// PacketConn is the UDP socket STUN and TURN are served on (a Demux's
	// STUN side when the DHT shares the port). The Server closes it.
	PacketConn net.PacketConn
	// Listener, when set and TURN is on, accepts TURN over TCP: connections
	// carrying STUN framing, as a portmux hands them over, TLS already
	// terminated for turns:. The Server closes it.
	Listener net.Listener
	// Certificate returns the certificate TLS connections on Listener's port
	// are served with; nil when that port has no TLS. turns: URLs are offered
	// only for hosts it covers.
	Certificate func() *tls.Certificate

	// NoSTUN leaves STUN binding requests unanswered (and unoffered).
	NoSTUN bool
	// TURN turns the relay on.
	TURN bool
	// Secret keys the credentials; empty means a random one for this
	// process (credentials then die with it).
	Secret []byte
	// CredentialTTL is how long handed out credentials stay valid.
	CredentialTTL time.Duration
	// RelayIP is the address relays are advertised by. The zero value means
	// the UDP socket's address, or, when it listens on all addresses, the
	// host's only global IPv4 address.
	RelayIP netip.Addr
	// PublicHost, when set, names this server in ICE server URLs instead of
	// the host each peer reached the mediator by.
	PublicHost string
	// OwnPorts are further ports of this host relays must not reach (the
	// mediator's HTTP port when it is not Listener's). PacketConn's,
	// Listener's and the relays' own ports are always refused.
	OwnPorts []int

	// Caps on allocations.
	MaxAllocations, MaxAllocationsPerIP, MaxAllocationsPerPeer int
	// RelayBytesPerSecond caps relayed bytes (both directions, all
	// allocations); negative means no cap. RelayBytesPerAllocation caps
	// each allocation alike; zero or negative means no per-allocation cap.
	RelayBytesPerSecond, RelayBytesPerAllocation int64
	// BindingRate caps STUN binding answers per second.
	BindingRate rate.Limit
	// MaxStreamConns caps TURN connections over TCP and TLS; a client IP may
	// hold MaxAllocationsPerIP of them.
	MaxStreamConns int

	// AllowPrivatePeers lets relays reach private addresses (RFC 1918, ULA,
	// 100.64/10): for a mediator serving one private network.
	AllowPrivatePeers bool
	// AllowLoopbackPeers lets relays reach loopback addresses. For tests on
	// one host only: on a real server it opens the host's own services.
	AllowLoopbackPeers bool

	// Registerer receives the server's metrics; nil means none are kept
	// anywhere visible.
	Registerer prometheus.Registerer
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Server is a STUN (and TURN) server. Create it with New, then Run it.
type Server struct {
	cfg       Config
	log       *slog.Logger
	secret    []byte
	relayIP   netip.Addr
	relayBind netip.Addr
	udpPort   int
	tcpPort   int
	metrics   *metrics
	quotas    *quotas
	own       *ownAddrs

	relayLimit   *rate.Limiter // nil: no cap
	bindingLimit *rate.Limiter
}

// New checks cfg, fills in defaults and registers the metrics.
func New(cfg Config) (*Server, error) {
	if cfg.PacketConn == nil {
		return nil, errors.New("iceserver: Config.PacketConn is required")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: newMetrics()}
	if s.log == nil {
		s.log = slog.Default()
	}
	c := &s.cfg
	c.CredentialTTL = orDefault(c.CredentialTTL, DefaultCredentialTTL)
	c.MaxAllocations = orDefault(c.MaxAllocations, DefaultMaxAllocations)
	c.MaxAllocationsPerIP = orDefault(c.MaxAllocationsPerIP, DefaultMaxAllocationsPerIP)
	c.MaxAllocationsPerPeer = orDefault(c.MaxAllocationsPerPeer, DefaultMaxAllocationsPerPeer)
	c.BindingRate = orDefault(c.BindingRate, DefaultBindingRate)
	c.MaxStreamConns = orDefault(c.MaxStreamConns, DefaultMaxStreamConns)
	if c.RelayBytesPerSecond == 0 {
		c.RelayBytesPerSecond = DefaultRelayBytesPerSecond
	}
	if c.RelayBytesPerSecond > 0 {
		s.relayLimit = rate.NewLimiter(rate.Limit(c.RelayBytesPerSecond), burstFor(c.RelayBytesPerSecond))
	}
	s.bindingLimit = rate.NewLimiter(c.BindingRate, int(max(c.BindingRate, 1)))

	s.secret = c.Secret
	if len(s.secret) == 0 {
		s.secret = make([]byte, 32)
		rand.Read(s.secret)
	}
	if c.PublicHost != "" {
		h, ok := urlHost(c.PublicHost)
		if !ok {
			return nil, fmt.Errorf("iceserver: public host %q is neither a host name nor an IP address", c.PublicHost)
		}
		c.PublicHost = h
	}

	local, err := netip.ParseAddrPort(c.PacketConn.LocalAddr().String())
	if err != nil {
		return nil, fmt.Errorf("iceserver: the UDP socket's address %s: %w", c.PacketConn.LocalAddr(), err)
	}
	s.udpPort = int(local.Port())
	if c.Listener != nil {
		if ap, err := netip.ParseAddrPort(c.Listener.Addr().String()); err == nil {
			s.tcpPort = int(ap.Port())
		}
	}
	if c.TURN {
		if err := s.pickRelayAddrs(local.Addr().Unmap()); err != nil {
			return nil, err
		}
	}
	s.own = newOwnAddrs(local.Addr(), s.relayIP)
	for _, p := range append([]int{s.udpPort, s.tcpPort}, c.OwnPorts...) {
		if p > 0 {
			s.own.addPort(p)
		}
	}
	s.quotas = newQuotas(c.MaxAllocations, c.MaxAllocationsPerIP, c.MaxAllocationsPerPeer)
	if c.Registerer != nil {
		if err := s.metrics.register(c.Registerer, func() float64 { return float64(s.quotas.count()) }); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func orDefault[T int | time.Duration | rate.Limit](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// pickRelayAddrs decides where relay sockets bind (the listen address) and
// which address they are advertised by.
func (s *Server) pickRelayAddrs(listen netip.Addr) error {
	s.relayBind = listen
	s.relayIP = s.cfg.RelayIP.Unmap()
	if !s.relayIP.IsValid() && !listen.IsUnspecified() {
		s.relayIP = listen
	}
	if !s.relayIP.IsValid() {
		ip, err := onlyGlobalIPv4()
		if err != nil {
			return err
		}
		s.relayIP = ip
	}
	if s.relayIP.IsUnspecified() || s.relayIP.IsMulticast() {
		return fmt.Errorf("iceserver: %s cannot be a relay address", s.relayIP)
	}
	if listen.IsUnspecified() || listen.Is4() != s.relayIP.Is4() {
		s.relayBind = netip.IPv4Unspecified()
		if s.relayIP.Is6() {
			s.relayBind = netip.IPv6Unspecified()
		}
	}
	return nil
}

// onlyGlobalIPv4 returns the host's global unicast IPv4 address when it has
// exactly one.
func onlyGlobalIPv4() (netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("iceserver: listing this host's addresses for the relay address: %w", err)
	}
	var found []netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		if ip := p.Addr().Unmap(); ip.Is4() && ip.IsGlobalUnicast() && !ip.IsPrivate() {
			found = append(found, ip)
		}
	}
	if len(found) != 1 {
		return netip.Addr{}, fmt.Errorf("iceserver: the UDP socket listens on all addresses and this host has %d public IPv4 addresses %v: "+
			"name the one peers reach it by as the relay address (--turn-relay-ip) or listen on it", len(found), found)
	}
	return found[0], nil
}

// RelayIP is the address relays are advertised by (zero without TURN).
func (s *Server) RelayIP() netip.Addr { return s.relayIP }

// Run serves until ctx ends or the UDP socket fails, then closes the
// sockets and listener it was given and every relay.
func (s *Server) Run(ctx context.Context) error {
	front := &udpFront{PacketConn: s.cfg.PacketConn, s: s}
	if !s.cfg.TURN {
		if s.cfg.Listener != nil {
			s.cfg.Listener.Close() // TURN over TCP only
		}
		stop := context.AfterFunc(ctx, func() { s.cfg.PacketConn.Close() })
		defer stop()
		defer s.cfg.PacketConn.Close()
		buf := make([]byte, 2048)
		for {
			// With TURN off the front answers bindings and never returns a
			// datagram.
			if _, _, err := front.ReadFrom(buf); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("iceserver: reading STUN from %s: %w", s.cfg.PacketConn.LocalAddr(), err)
			}
		}
	}

	failed := make(chan error, 1)
	watched := &watchedConn{udpFront: front, failed: failed}
	pcs := []turn.PacketConnConfig{{PacketConn: watched, RelayAddressGenerator: relays{s}, PermissionHandler: s.permit}}
	var lns []turn.ListenerConfig
	var streams *streamListener
	if s.cfg.Listener != nil {
		streams = newStreamListener(s.cfg.Listener, s.cfg.MaxStreamConns, s.cfg.MaxAllocationsPerIP,
			func() { s.metrics.refuse(refuseStreamConns) })
		lns = append(lns, turn.ListenerConfig{Listener: streams, RelayAddressGenerator: relays{s}, PermissionHandler: s.permit})
	}
	ts, err := turn.NewServer(turn.ServerConfig{
		PacketConnConfigs: pcs,
		ListenerConfigs:   lns,
		LoggerFactory:     pionLogs{s.log},
		Realm:             Realm,
		AuthHandler:       s.auth,
		QuotaHandler:      s.quota,
		EventHandler: turn.EventHandler{
			OnAuth:              s.onAuth,
			OnAllocationCreated: s.onCreated,
			OnAllocationDeleted: s.onDeleted,
			OnAllocationError:   func(net.Addr, net.Addr, string, string) { s.metrics.requestErrors.Inc() },
		},
	})
	if err != nil {
		s.cfg.PacketConn.Close()
		if s.cfg.Listener != nil {
			s.cfg.Listener.Close()
		}
		return fmt.Errorf("iceserver: starting the TURN server: %w", err)
	}
	s.log.Info("TURN relay serving", "udp", s.cfg.PacketConn.LocalAddr().String(), "relay_ip", s.relayIP.String(),
		"tcp", s.tcpPort != 0)
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-failed:
		runErr = fmt.Errorf("iceserver: reading TURN from %s: %w", s.cfg.PacketConn.LocalAddr(), err)
	}
	ts.Close()
	if streams != nil {
		streams.closeAll()
	}
	return runErr
}

// watchedConn reports the UDP socket's failure, which pion/turn only logs.
type watchedConn struct {
	*udpFront
	failed chan<- error
	once   sync.Once
}

func (w *watchedConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := w.udpFront.ReadFrom(p)
	if err != nil {
		w.once.Do(func() { w.failed <- err })
	}
	return n, addr, err
}

func (s *Server) permit(client net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	if !ok {
		s.metrics.refuse(refuseUnspecified)
		return false
	}
	if reason := s.peerRefusal(ip); reason != "" {
		s.metrics.refuse(reason)
		s.log.Debug("TURN permission refused", "client", client.String(), "peer", ip.String(), "reason", reason)
		return false
	}
	return true
}

func (s *Server) auth(ra *turn.RequestAttributes) (string, []byte, bool) {
	peer, err := parseUsername(ra.Username, time.Now())
	if err != nil {
		reason := refuseBadUsername
		if errors.Is(err, errExpired) {
			reason = refuseExpired
		}
		s.metrics.refuse(reason)
		return "", nil, false
	}
	return peer, turn.GenerateAuthKey(ra.Username, ra.Realm, password64(s.secret, ra.Username)), true
}

func (s *Server) onAuth(_, _ net.Addr, _, _, _ string, _ string, verdict bool) {
	if !verdict {
		s.metrics.refuse(refuseBadPassword)
	}
}

// quota is called with the user id auth returned: the peer id.
func (s *Server) quota(peer, _ string, src net.Addr) bool {
	if !mediation.ValidPeerID(peer) {
		s.metrics.refuse(refuseBadUsername)
		return false
	}
	if reason := s.quotas.grant(peer, src, time.Now()); reason != "" {
		s.metrics.refuse(reason)
		s.log.Debug("TURN allocation refused", "client", src.String(), "peer", peer, "reason", reason)
		return false
	}
	return true
}

func tupleKey(src, dst net.Addr) string { return src.String() + "|" + dst.String() }

func (s *Server) onCreated(src, dst net.Addr, _, peer, _ string, relay net.Addr, _ int) {
	s.quotas.created(tupleKey(src, dst), src, peer)
	s.metrics.allocationsTotal.Inc()
	s.log.Debug("TURN allocation", "client", src.String(), "peer", peer, "relay", relay.String())
}

func (s *Server) onDeleted(src, dst net.Addr, _, _, _ string) {
	s.quotas.deleted(tupleKey(src, dst))
}

// ICEServers returns the STUN and TURN servers for peer, named by host (an
// HTTP Host: host or host:port) unless Config.PublicHost is set, with fresh
// TURN credentials and their expiry (zero without TURN). It returns nothing
// for a host that is neither a name nor an IP address. It implements
// mediator.ICEProvider.
func (s *Server) ICEServers(peerID, host string) ([]mediation.ICEServer, time.Time) {
	h := s.cfg.PublicHost
	if h == "" {
		var ok bool
		if h, ok = urlHost(host); !ok {
			return nil, time.Time{}
		}
	}
	var out []mediation.ICEServer
	udp := net.JoinHostPort(h, strconv.Itoa(s.udpPort))
	if !s.cfg.NoSTUN {
		out = append(out, mediation.ICEServer{URLs: []string{"stun:" + udp}})
	}
	if !s.cfg.TURN {
		return out, time.Time{}
	}
	exp := time.Now().Add(s.cfg.CredentialTTL).Truncate(time.Second)
	user, pass := credentials(s.secret, peerID, exp)
	urls := []string{"turn:" + udp + "?transport=udp"}
	if s.tcpPort != 0 {
		tcp := net.JoinHostPort(h, strconv.Itoa(s.tcpPort))
		urls = append(urls, "turn:"+tcp+"?transport=tcp")
		if s.certCovers(h) {
			urls = append(urls, "turns:"+tcp+"?transport=tcp")
		}
	}
	return append(out, mediation.ICEServer{URLs: urls, Username: user, Credential: pass}), exp
}

// certCovers reports whether the TLS certificate names host: browsers
// check it, so turns: with another name would only cost them a failed try.
func (s *Server) certCovers(host string) bool {
	if s.cfg.Certificate == nil {
		return false
	}
	c := s.cfg.Certificate()
	if c == nil || len(c.Certificate) == 0 {
		return false
	}
	leaf := c.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return false
		}
	}
	return leaf.VerifyHostname(host) == nil
}

// urlHost extracts the host from an HTTP Host (host, host:port, [v6]:port)
// and checks that it is an IP address or a DNS name, so it can go into a URL
// unescaped.
func urlHost(hostport string) (string, bool) {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.Zone() != "" || ip.IsUnspecified() {
			return "", false
		}
		return ip.Unmap().String(), true
	}
	if !validDNSName(h) {
		return "", false
	}
	return strings.ToLower(strings.TrimSuffix(h, ".")), true
}

func validDNSName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/p2pcdn/p2pcdn/internal/certreload"
	"github.com/p2pcdn/p2pcdn/internal/iceserver"
)

// iceFlags are the mediator's STUN/TURN and TLS flags.
func iceFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{
			Name:  "no-stun",
			Usage: "do not answer STUN binding requests on the UDP port (STUN is on by default and offered to peers)",
		},
		&cli.BoolFlag{
			Name: "turn",
			Usage: "also relay for peers that no direct path connects (TURN over UDP, over TCP on the --listen port and, " +
				"with --tls-cert, over TLS); peers get fresh credentials from the mediator, nobody else can use it. " +
				"Costs bandwidth: see the README",
		},
		&cli.StringFlag{
			Name:  "turn-relay-ip",
			Usage: "`IP` address peers reach relays by, when it is not the listen address (a cloud host's public address behind 1:1 NAT)",
		},
		&cli.StringFlag{
			Name:    "turn-secret",
			EnvVars: []string{"P2PCDN_TURN_SECRET"},
			Usage: "`SECRET` the TURN credentials are signed with; mediators sharing it accept each other's credentials. " +
				"Default: random per process",
		},
		&cli.IntFlag{
			Name:  "turn-max-allocations",
			Value: iceserver.DefaultMaxAllocations,
			Usage: "at most `N` TURN allocations at once",
		},
		&cli.IntFlag{
			Name:  "turn-max-allocations-per-ip",
			Value: iceserver.DefaultMaxAllocationsPerIP,
			Usage: "at most `N` TURN allocations (and TURN connections over TCP) from one client IP address",
		},
		&cli.IntFlag{
			Name:  "turn-max-allocations-per-peer",
			Value: iceserver.DefaultMaxAllocationsPerPeer,
			Usage: "at most `N` TURN allocations per peer id",
		},
		&cli.IntFlag{
			Name:  "turn-max-mbps",
			Value: iceserver.DefaultRelayBytesPerSecond * 8 / 1_000_000,
			Usage: "relay at most `MBIT` megabits per second in all (both directions); 0 means no cap",
		},
		&cli.BoolFlag{
			Name:  "turn-allow-private",
			Usage: "let relays reach private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7): for a mediator serving one private network",
		},
		&cli.BoolFlag{
			Name:   "turn-allow-loopback",
			Hidden: true, // tests on one host only: it opens this host's own services to relays
			Usage:  "let relays reach loopback addresses (tests only)",
		},
		&cli.StringFlag{
			Name:  "tls-cert",
			Usage: "serve HTTPS, WSS and TURNS on the --listen port with the certificate in `FILE` (PEM, full chain); renewed files are picked up without a restart",
		},
		&cli.StringFlag{
			Name:  "tls-key",
			Usage: "the private key of --tls-cert, in `FILE` (PEM)",
		},
		&cli.StringFlag{
			Name:  "public-host",
			Usage: "`HOST` name or address to put in the STUN/TURN URLs handed to peers; default: the host each peer used to reach the mediator",
		},
	}
}

// iceOptions are the checked ICE and TLS flags.
type iceOptions struct {
	stun, turn bool
	relayIP    netip.Addr
	cfg        iceserver.Config // caps, secret, public host, policy
	tls        *certreload.Reloader
}

func parseICEFlags(cctx *cli.Context, log *slog.Logger) (*iceOptions, error) {
	o := &iceOptions{stun: !cctx.Bool("no-stun"), turn: cctx.Bool("turn")}
	if !o.stun && o.turn {
		return nil, usageErrorf("--no-stun and --turn: a TURN server answers STUN too; drop one")
	}
	if s := cctx.String("turn-relay-ip"); s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.IsUnspecified() || ip.Zone() != "" {
			return nil, usageErrorf("--turn-relay-ip %q: want the IP address peers reach this host by", s)
		}
		o.relayIP = ip
	}
	for _, name := range []string{"turn-max-allocations", "turn-max-allocations-per-ip", "turn-max-allocations-per-peer"} {
		if cctx.Int(name) < 1 {
			return nil, usageErrorf("--%s %d: want at least 1", name, cctx.Int(name))
		}
	}
	mbps := cctx.Int("turn-max-mbps")
	if mbps < 0 {
		return nil, usageErrorf("--turn-max-mbps %d: want 0 (no cap) or more", mbps)
	}
	rate := int64(mbps) * 1_000_000 / 8
	if mbps == 0 {
		rate = -1
	}
	o.cfg = iceserver.Config{
		NoSTUN:                !o.stun,
		TURN:                  o.turn,
		Secret:                []byte(cctx.String("turn-secret")),
		RelayIP:               o.relayIP,
		PublicHost:            cctx.String("public-host"),
		MaxAllocations:        cctx.Int("turn-max-allocations"),
		MaxAllocationsPerIP:   cctx.Int("turn-max-allocations-per-ip"),
		MaxAllocationsPerPeer: cctx.Int("turn-max-allocations-per-peer"),
		RelayBytesPerSecond:   rate,
		AllowPrivatePeers:     cctx.Bool("turn-allow-private"),
		AllowLoopbackPeers:    cctx.Bool("turn-allow-loopback"),
		Logger:                log,
	}
	cert, key := cctx.String("tls-cert"), cctx.String("tls-key")
	if (cert == "") != (key == "") {
		return nil, usageErrorf("--tls-cert and --tls-key go together")
	}
	if cert != "" {
		r, err := certreload.New(cert, key, 0, log)
		if err != nil {
			return nil, usageErrorf("--tls-cert/--tls-key: %w", err)
		}
		o.tls = r
	}
	return o, nil
}

// tlsConfig is the mediator's TLS: HTTP/1.1 only (WebSocket upgrades need
// it, and the port multiplexer hands connections on without HTTP/2).
func (o *iceOptions) tlsConfig() *tls.Config {
	if o.tls == nil {
		return nil
	}
	return &tls.Config{
		GetCertificate: o.tls.GetCertificate,
		NextProtos:     []string{"http/1.1"},
		MinVersion:     tls.VersionTLS12,
	}
}

// newICEServer builds the STUN/TURN server on pc (UDP) and, for TURN over
// TCP and TLS, stream (a portmux's STUN side, or nil).
func (o *iceOptions) newICEServer(pc net.PacketConn, stream net.Listener, httpPort int, reg prometheus.Registerer) (*iceserver.Server, error) {
	cfg := o.cfg
	cfg.PacketConn = pc
	cfg.Listener = stream
	cfg.OwnPorts = []int{httpPort}
	cfg.Registerer = reg
	if o.tls != nil {
		cfg.Certificate = o.tls.Certificate
	}
	s, err := iceserver.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("mediator: STUN/TURN: %w", err)
	}
	return s, nil
}

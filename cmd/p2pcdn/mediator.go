package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/urfave/cli/v2"

	"github.com/p2pcdn/p2pcdn/internal/clientip"
	"github.com/p2pcdn/p2pcdn/internal/federation"
	"github.com/p2pcdn/p2pcdn/internal/iceserver"
	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/mediator"
	"github.com/p2pcdn/p2pcdn/internal/portmux"
	"github.com/p2pcdn/p2pcdn/web"
)

func mediatorCommand() *cli.Command {
	return &cli.Command{
		Name:      "mediator",
		Usage:     "run a mediator: the signalling server peers meet through",
		ArgsUsage: " ",
		Description: "Serves Socket.IO (polling and WebSocket) under /socket.io/, health under /healthz, " +
			"Prometheus metrics under /metrics, what its peers seed under /hashes (JSON), the browser peer library at /p2pcdn.js " +
			"and a demo page at /, until interrupted (SIGINT or SIGTERM). " +
			"One UDP port (the --listen port unless --udp-listen) carries the DHT and STUN (and TURN with --turn); peers learn the " +
			"STUN/TURN servers from the mediator, with fresh TURN credentials. With --tls-cert the --listen port serves HTTPS and WSS " +
			"(and plain HTTP still), and TURN over TCP and TLS shares it too. The limits protect it from unauthenticated clients; " +
			"see docs/security.md, also for running it behind a reverse proxy.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{
				Name:  "listen",
				Value: "127.0.0.1:8888",
				Usage: "`ADDRESS` (host:port) to listen on; use 0.0.0.0:8888 to accept other machines",
			},
			&cli.IntFlag{
				Name:  "max-peers",
				Value: mediator.DefaultMaxPeersPerAnswer,
				Usage: "at most `N` peer ids in one answer to get_peers",
			},
			&cli.BoolFlag{
				Name:  "verbose",
				Usage: "log every peer joining and leaving",
			},
			&cli.StringSliceFlag{
				Name: "trust-proxy",
				Usage: "take the client address from X-Forwarded-For or Forwarded, but only on requests from the reverse proxy at `CIDR` " +
					"(e.g. 127.0.0.1/32; repeatable); without it, behind a proxy every per-address limit counts the proxy",
			},
			&cli.IntFlag{
				Name:  "max-conns-per-ip",
				Value: mediator.DefaultMaxConnsPerClient,
				Usage: "at most `N` open TCP connections from one client address (IPv6: one /64); 0 for no limit",
			},
			&cli.IntFlag{
				Name:  "max-sessions-per-ip",
				Value: mediator.DefaultMaxSessionsPerClient,
				Usage: "at most `N` Socket.IO sessions (WebSocket or polling) from one client address; 0 for no limit",
			},
			&cli.IntFlag{
				Name:  "max-hashes-per-conn",
				Value: mediator.DefaultMaxHashesPerConn,
				Usage: "at most `N` hashes announced by one connection; 0 for no limit",
			},
			&cli.IntFlag{
				Name:  "max-hashes-per-ip",
				Value: mediator.DefaultMaxHashesPerClient,
				Usage: "at most `N` hashes announced from one client address, all its connections together; 0 for no limit",
			},
			&cli.IntFlag{
				Name:  "max-seeders",
				Value: mediator.DefaultMaxSeeders,
				Usage: "at most `N` announced (peer, hash) pairs in all, about 160 bytes each; 0 for no limit",
			},
			&cli.IntFlag{
				Name:  "event-rate",
				Value: mediator.DefaultEventRate,
				Usage: "at most `N` events per second from one connection, with bursts of ten seconds' worth",
			},
			&cli.IntFlag{
				Name:  "hash-rate",
				Value: mediator.DefaultHashRate,
				Usage: "at most `N` hashes per second named by one connection's events (a batch event names many), with bursts up to --max-hashes-per-conn",
			},
			&cli.IntFlag{
				Name:  "batch",
				Value: mediator.DefaultBatch,
				Usage: "at most `N` hashes in one batch event (announce_many, finish_many, get_peers_many); 0 turns batch events off",
			},
			&cli.IntFlag{
				Name:  "max-signal-size",
				Value: mediator.DefaultMaxSignalSize,
				Usage: "drop signals whose data is larger than `BYTES` (at most 65536)",
			},
			&cli.IntFlag{
				Name:  "signal-rate",
				Value: mediator.DefaultSignalRate,
				Usage: "drop signals to a peer beyond `BYTES` per second (bursts of four seconds' worth, an eighth of it per sender); 0 for no limit",
			},
			&cli.DurationFlag{
				Name:  "handshake-timeout",
				Value: mediator.DefaultHandshakeTimeout,
				Usage: "close connections that have not completed the handshake `DURATION` after they opened",
			},
			&cli.BoolFlag{
				Name:  "no-dht",
				Usage: "do not federate with other mediators through the DHT",
			},
			&cli.StringFlag{
				Name:    "udp-listen",
				Aliases: []string{"dht-listen"},
				Usage:   "UDP `ADDRESS` of the DHT node and STUN/TURN (one port for both); default: the --listen address, over UDP",
			},
			&cli.StringSliceFlag{
				Name:  "bootstrap",
				Usage: "join the DHT through the node at `HOST:PORT` (repeatable), e.g. another mediator's DHT address",
			},
			&cli.BoolFlag{
				Name:  "dht-public",
				Usage: "also bootstrap from the public Mainline DHT routers (off by default: nothing reaches the internet by itself)",
			},
		}, iceFlags()...),
		Action: func(cctx *cli.Context) error {
			if cctx.NArg() > 0 {
				return usageErrorf("mediator takes no arguments, got %q", cctx.Args().First())
			}
			addr := cctx.String("listen")
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return usageErrorf("--listen %q: want host:port, e.g. 127.0.0.1:8888", addr)
			}
			if n := cctx.Int("max-peers"); n < 1 {
				return usageErrorf("--max-peers %d: want at least 1", n)
			}
			level := slog.LevelInfo
			if cctx.Bool("verbose") {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ice, err := parseICEFlags(cctx, log)
			if err != nil {
				return err
			}
			srv := &mediator.Server{
				Logger:            log,
				MaxPeersPerAnswer: cctx.Int("max-peers"),
				Fallback:          web.Handler(), // the browser library and the demo page
			}
			if err := applyLimits(cctx, srv); err != nil {
				return err
			}
			return serveMediator(cctx, srv, addr, ice)
		},
	}
}

// applyLimits copies the limit flags into srv. A flag's 0 means no limit,
// which Server spells -1 (its 0 is the default).
func applyLimits(cctx *cli.Context, srv *mediator.Server) error {
	proxies, err := clientip.ParseProxies(cctx.StringSlice("trust-proxy"))
	if err != nil {
		return usageErrorf("--trust-proxy: %w", err)
	}
	srv.TrustedProxies = proxies
	limits := []struct {
		flag string
		dst  *int
	}{
		{"max-conns-per-ip", &srv.MaxConnsPerClient},
		{"max-sessions-per-ip", &srv.MaxSessionsPerClient},
		{"max-hashes-per-conn", &srv.MaxHashesPerConn},
		{"max-hashes-per-ip", &srv.MaxHashesPerClient},
		{"max-seeders", &srv.MaxSeeders},
		{"batch", &srv.Batch},
		{"signal-rate", &srv.SignalRate},
	}
	for _, l := range limits {
		n := cctx.Int(l.flag)
		switch {
		case n < 0:
			return usageErrorf("--%s %d: want 0 (no limit) or more", l.flag, n)
		case n == 0:
			*l.dst = -1
		default:
			*l.dst = n
		}
	}
	if n := cctx.Int("batch"); n > mediation.MaxBatch {
		return usageErrorf("--batch %d: at most %d", n, mediation.MaxBatch)
	}
	for _, f := range []string{"event-rate", "hash-rate"} {
		if n := cctx.Int(f); n < 1 {
			return usageErrorf("--%s %d: want at least 1", f, n)
		}
	}
	srv.EventRate = rate.Limit(cctx.Int("event-rate"))
	srv.HashRate = rate.Limit(cctx.Int("hash-rate"))
	if n := cctx.Int("max-signal-size"); n < 1024 || n > mediation.MaxSignalData {
		return usageErrorf("--max-signal-size %d: want 1024 to %d", n, mediation.MaxSignalData)
	}
	srv.MaxSignalSize = cctx.Int("max-signal-size")
	if d := cctx.Duration("handshake-timeout"); d <= 0 {
		return usageErrorf("--handshake-timeout %v: want a positive duration", d)
	}
	srv.HandshakeTimeout = cctx.Duration("handshake-timeout")
	return nil
}

// serveMediator listens on addr and serves srv, with STUN/TURN and TLS as
// ice says and federated through the DHT unless --no-dht, until the
// command's context ends. One TCP port carries HTTP(S), WS(S) and TURN over
// TCP/TLS (portmux); one UDP port the DHT and STUN/TURN (iceserver.Demux).
func serveMediator(cctx *cli.Context, srv *mediator.Server, addr string, ice *iceOptions) (err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mediator: %w", err)
	}
	var closers []io.Closer
	closers = append(closers, ln)
	defer func() {
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
		}
	}()
	g, ctx := errgroup.WithContext(cctx.Context)
	var runs []func(context.Context) error

	httpLn, stream := ln, net.Listener(nil)
	if ice.turn || ice.tls != nil {
		mux := portmux.New(ln, portmux.Config{TLS: ice.tlsConfig(), Logger: srv.Logger})
		httpLn = mux.HTTP()
		if ice.turn {
			stream = mux.STUN()
		} else {
			mux.STUN().Close() // STUN over TCP only with TURN
		}
		runs = append(runs, mux.Run)
	}
	tcpPort := ln.Addr().(*net.TCPAddr).Port

	dht, stunTURN := !cctx.Bool("no-dht"), ice.stun || ice.turn
	var dhtConn, iceConn net.PacketConn
	if dht || stunTURN {
		udpAddr := cctx.String("udp-listen")
		if udpAddr == "" {
			udpAddr = ln.Addr().String()
		}
		pc, err := net.ListenPacket("udp", udpAddr)
		if err != nil {
			return fmt.Errorf("mediator: UDP port for the DHT and STUN (or pass --udp-listen, --no-dht, --no-stun): %w", err)
		}
		closers = append(closers, pc)
		switch {
		case dht && stunTURN:
			demux, err := iceserver.NewDemux(pc, srv.Metrics())
			if err != nil {
				return fmt.Errorf("mediator: %w", err)
			}
			dhtConn, iceConn = demux.DHT(), demux.STUN()
			runs = append(runs, demux.Run)
		case dht:
			dhtConn = pc
		default:
			iceConn = pc
		}
	}
	if iceConn != nil {
		is, err := ice.newICEServer(iceConn, stream, tcpPort, srv.Metrics())
		if err != nil {
			return err
		}
		srv.ICE = is
		runs = append(runs, is.Run)
		srv.Logger.Info("STUN serving", "udp", iceConn.LocalAddr().String(), "turn", ice.turn, "tls", ice.tls != nil)
	}
	if dhtConn != nil {
		fed, err := federation.New(federation.Config{
			Mediator:        srv,
			MediatorID:      randomID(),
			PublicPort:      tcpPort,
			PacketConn:      dhtConn,
			Bootstrap:       cctx.StringSlice("bootstrap"),
			PublicBootstrap: cctx.Bool("dht-public"),
			Logger:          srv.Logger,
			Registerer:      srv.Metrics(),
		})
		if err != nil {
			return fmt.Errorf("mediator: start the DHT node (or pass --no-dht): %w", err)
		}
		srv.Federation = fed
		srv.Logger.Info("DHT node listening", "addr", fed.DHTAddr().String(), "bootstrap", cctx.StringSlice("bootstrap"))
		runs = append(runs, fed.Run)
	}
	for _, run := range runs {
		g.Go(func() error { return run(ctx) })
	}
	g.Go(func() error { return srv.Serve(ctx, httpLn) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// randomID returns a fresh mediator id: 20 random bytes in hex.
func randomID() string {
	var b [20]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"golang.org/x/sync/errgroup"

	"github.com/urfave/cli/v2"

	"github.com/p2pcdn/p2pcdn/internal/federation"
	"github.com/p2pcdn/p2pcdn/internal/mediator"
	"github.com/p2pcdn/p2pcdn/web"
)

func mediatorCommand() *cli.Command {
	return &cli.Command{
		Name:      "mediator",
		Usage:     "run a mediator: the signalling server peers meet through",
		ArgsUsage: " ",
		Description: "Serves Socket.IO (polling and WebSocket) under /socket.io/, health under /healthz, " +
			"Prometheus metrics under /metrics, the browser peer library at /p2pcdn.js and a demo page at /, until interrupted (SIGINT or SIGTERM).",
		Flags: []cli.Flag{
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
			&cli.BoolFlag{
				Name:  "no-dht",
				Usage: "do not federate with other mediators through the DHT",
			},
			&cli.StringFlag{
				Name:  "dht-listen",
				Usage: "UDP `ADDRESS` of the DHT node; default: the --listen address, over UDP",
			},
			&cli.StringSliceFlag{
				Name:  "bootstrap",
				Usage: "join the DHT through the node at `HOST:PORT` (repeatable), e.g. another mediator's DHT address",
			},
			&cli.BoolFlag{
				Name:  "dht-public",
				Usage: "also bootstrap from the public Mainline DHT routers (off by default: nothing reaches the internet by itself)",
			},
		},
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
			srv := &mediator.Server{
				Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
				MaxPeersPerAnswer: cctx.Int("max-peers"),
				Fallback:          web.Handler(), // the browser library and the demo page
			}
			return serveMediator(cctx, srv, addr)
		},
	}
}

// serveMediator listens on addr and serves srv, federated through the DHT
// unless --no-dht, until the command's context ends.
func serveMediator(cctx *cli.Context, srv *mediator.Server, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mediator: %w", err)
	}
	if cctx.Bool("no-dht") {
		return srv.Serve(cctx.Context, ln)
	}
	_, portText, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(portText)
	dhtAddr := cctx.String("dht-listen")
	if dhtAddr == "" {
		dhtAddr = ln.Addr().String()
	}
	fed, err := federation.New(federation.Config{
		Mediator:        srv,
		MediatorID:      randomID(),
		PublicPort:      port,
		DHTListen:       dhtAddr,
		Bootstrap:       cctx.StringSlice("bootstrap"),
		PublicBootstrap: cctx.Bool("dht-public"),
		Logger:          srv.Logger,
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("mediator: start the DHT node (or pass --no-dht): %w", err)
	}
	srv.Federation = fed
	srv.Logger.Info("DHT node listening", "addr", fed.DHTAddr().String(), "bootstrap", cctx.StringSlice("bootstrap"))
	g, ctx := errgroup.WithContext(cctx.Context)
	g.Go(func() error { return fed.Run(ctx) })
	g.Go(func() error { return srv.Serve(ctx, ln) })
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

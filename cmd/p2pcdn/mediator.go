package main

import (
	"log/slog"
	"net"
	"os"

	"github.com/urfave/cli/v2"

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
			// The context given to the action ends on SIGINT/SIGTERM, which
			// makes ListenAndServe shut down gracefully.
			return srv.ListenAndServe(cctx.Context, addr)
		},
	}
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/p2pcdn/p2pcdn/internal/mediator"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/web"
)

// defaultMediatorAddr is where seed embeds a mediator, and where get looks
// for one, when none is configured.
const defaultMediatorAddr = "127.0.0.1:8888"

// peerFlags are the flags of the commands that exchange files with peers.
func peerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "mediator",
			EnvVars: []string{"P2PCDN_MEDIATOR"},
			Usage: "mediator `URL` (ws://host:port, http://host:port or host:port); default: seed runs an embedded " +
				"one on " + defaultMediatorAddr + ", get uses ws://" + defaultMediatorAddr,
		},
		&cli.StringSliceFlag{
			Name:    "ice-server",
			EnvVars: []string{rtc.EnvICEServers},
			Usage: "STUN/TURN server `URL` for WebRTC (repeatable or comma-separated; " +
				"turn:user:pass@host:port); default none, so nothing reaches the internet by itself",
		},
		&cli.BoolFlag{
			Name:    "ice-loopback",
			EnvVars: []string{rtc.EnvICELoopback},
			Usage:   "connect over loopback only (tests and single-host use)",
		},
		&cli.BoolFlag{
			Name:  "verbose",
			Usage: "log connection details",
		},
	}
}

// newLogger logs to stderr, at debug level with --verbose.
func newLogger(cctx *cli.Context) *slog.Logger {
	level := slog.LevelWarn
	if cctx.Bool("verbose") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// newTransport builds the WebRTC transport from the peer flags (and seed's --ice-tcp-listen).
func newTransport(cctx *cli.Context, log *slog.Logger) (*rtc.Transport, error) {
	cfg := rtc.Config{Loopback: cctx.Bool("ice-loopback"), Logger: log}
	for _, s := range cctx.StringSlice("ice-server") {
		servers, err := rtc.ParseICEServers(s)
		if err != nil {
			return nil, usageErrorf("--ice-server: %w", err)
		}
		cfg.ICEServers = append(cfg.ICEServers, servers...)
	}
	if addr := cctx.String("ice-tcp-listen"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("--ice-tcp-listen %s: %w", addr, err)
		}
		cfg.ICETCPListener = ln // the transport closes it
	}
	tr, err := rtc.New(cfg)
	if err != nil && cfg.ICETCPListener != nil {
		cfg.ICETCPListener.Close()
	}
	return tr, err
}

// embedMediator starts a mediator on addr for the life of ctx. The returned
// function stops it and waits until it has.
func embedMediator(ctx context.Context, addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start the embedded mediator on %s: %w (is another mediator running there? then pass --mediator %s)", addr, err, addr)
	}
	ctx, cancel := context.WithCancel(ctx)
	srv := &mediator.Server{Logger: log, Fallback: web.Handler()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, ln); err != nil {
			log.Error("embedded mediator stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

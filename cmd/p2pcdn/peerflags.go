package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/p2pcdn/p2pcdn/internal/iceserver"
	"github.com/p2pcdn/p2pcdn/internal/mediator"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
	"github.com/p2pcdn/p2pcdn/internal/termstatus"
	"github.com/p2pcdn/p2pcdn/web"
)

// defaultMediatorAddr is where seed embeds a mediator, and where get looks
// for one, when none is configured.
const defaultMediatorAddr = "127.0.0.1:8888"

// peerFlags are the flags of the commands that exchange files with peers;
// mediatorDefault says what the command does without --mediator.
func peerFlags(mediatorDefault string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "mediator",
			EnvVars: []string{"P2PCDN_MEDIATOR"},
			Usage:   "mediator `URL` (ws://host:port, http://host:port or host:port); default: " + mediatorDefault,
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

// newLogger logs to stderr: everything, as a developer's log, with
// --verbose; else only warnings and errors, as one line each for the user,
// printed above the status line.
func newLogger(cctx *cli.Context, status *termstatus.Line) *slog.Logger {
	if cctx.Bool("verbose") {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(newUserHandler(func(line string) { status.Println(os.Stderr, line) }))
}

// mediatorFlag returns --mediator, checked: a malformed address is a usage
// error (exit 2), not something to retry. "" means none was given.
func mediatorFlag(cctx *cli.Context) (string, error) {
	u := cctx.String("mediator")
	if u == "" {
		return "", nil
	}
	if err := socketio.CheckURL(u); err != nil {
		return "", usageErrorf("--mediator: %w", err)
	}
	return u, nil
}

// rtcConfig is the WebRTC configuration the peer flags ask for; seed and get
// add the STUN/TURN servers their mediator hands out.
func rtcConfig(cctx *cli.Context, log *slog.Logger) (rtc.Config, error) {
	cfg := rtc.Config{Loopback: cctx.Bool("ice-loopback"), Logger: log}
	for _, s := range cctx.StringSlice("ice-server") {
		servers, err := rtc.ParseICEServers(s)
		if err != nil {
			return cfg, usageErrorf("--ice-server: %w", err)
		}
		cfg.ICEServers = append(cfg.ICEServers, servers...)
	}
	return cfg, nil
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
	// STUN on the same port over UDP, offered to the mediator's peers, so
	// NATed peers learn their public address from the seeder's host alone.
	var stun *iceserver.Server
	if pc, err := net.ListenPacket("udp", ln.Addr().String()); err != nil {
		log.Warn("embedded mediator without STUN", "err", err)
	} else if stun, err = iceserver.New(iceserver.Config{PacketConn: pc, Logger: log, Registerer: srv.Metrics()}); err != nil {
		pc.Close()
		log.Warn("embedded mediator without STUN", "err", err)
		stun = nil
	} else {
		srv.ICE = stun
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, ln); err != nil {
			log.Error("embedded mediator stopped", "err", err)
		}
	}()
	stunDone := make(chan struct{})
	go func() {
		defer close(stunDone)
		if stun == nil {
			return
		}
		if err := stun.Run(ctx); err != nil {
			log.Error("embedded mediator's STUN stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done; <-stunDone }, nil
}

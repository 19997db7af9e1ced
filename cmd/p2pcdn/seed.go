package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/p2pcdn/p2pcdn/internal/scan"
	"github.com/p2pcdn/p2pcdn/internal/seed"
	"github.com/p2pcdn/p2pcdn/internal/store"
)

func seedCommand() *cli.Command {
	return &cli.Command{
		Name:      "seed",
		Usage:     "hash files and serve them to peers",
		ArgsUsage: "PATH...",
		Description: "Hashes the files (directories recursively; unchanged files come from the hash cache), " +
			"announces each to the mediator and serves its pieces to any peer, browser or native, until " +
			"interrupted or for --for DURATION. Prints each file's hash, size, name and the command that " +
			"fetches it. With no mediator configured it runs an embedded one on " + defaultMediatorAddr + ".",
		Flags: append(peerFlags(),
			&cli.DurationFlag{
				Name:  "for",
				Usage: "seed for `DURATION` (e.g. 10m), then say goodbye to the mediator and exit 0",
			},
			&cli.BoolFlag{
				Name:  "json",
				Usage: "print one info dictionary (JSON) per line instead of the human summary",
			},
			&cli.StringFlag{
				Name: "ice-tcp-listen",
				Usage: "also accept WebRTC over TCP (ICE-TCP) on `ADDR` (e.g. :8443), so peers whose network " +
					"blocks UDP reach this seeder directly; open that TCP port in the firewall",
			},
			&cli.BoolFlag{
				Name:  "no-cache",
				Usage: "hash every file again instead of using the hash cache",
			},
		),
		Action: runSeed,
	}
}

func runSeed(cctx *cli.Context) error {
	if cctx.NArg() == 0 {
		return usageErrorf("seed: name at least one file or directory")
	}
	if d := cctx.Duration("for"); d < 0 {
		return usageErrorf("--for %s: want a positive duration", d)
	}
	log := newLogger(cctx)
	ctx := cctx.Context
	if d := cctx.Duration("for"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}

	rtcCfg, err := rtcConfig(cctx, log)
	if err != nil {
		return err
	}
	if addr := cctx.String("ice-tcp-listen"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("--ice-tcp-listen %s: %w", addr, err)
		}
		defer ln.Close() // the transport closes it too; this covers an early return
		rtcCfg.ICETCPListener = ln
	}

	warn := func(path string, err error) { fmt.Fprintf(os.Stderr, "p2pcdn: warning: %s: %v\n", path, err) }
	var cache *store.HashCache
	if !cctx.Bool("no-cache") {
		cache = openCache(warn)
	}

	mediatorURL := cctx.String("mediator")
	if mediatorURL == "" {
		stop, err := embedMediator(ctx, defaultMediatorAddr, log)
		if err != nil {
			return err
		}
		defer stop()
		mediatorURL = "ws://" + defaultMediatorAddr
		fmt.Fprintf(os.Stderr, "no mediator configured: running one on %s\n", mediatorURL)
	}

	var progress func(int64)
	bar := hashProgress(ctx, os.Stderr, cctx.Args().Slice(), cache)
	if bar != nil {
		progress = func(n int64) { bar.Add64(n) }
	}
	jsonOut := cctx.Bool("json")
	getCmd := "p2pcdn get --mediator " + mediatorURL
	if cctx.Bool("ice-loopback") {
		getCmd = "p2pcdn get --ice-loopback --mediator " + mediatorURL
	}
	err = seed.Run(ctx, seed.Config{
		Paths:    cctx.Args().Slice(),
		Mediator: mediatorURL,
		RTC:      rtcCfg,
		Cache:    cache,
		Logger:   log,
		Progress: progress,
		Warn:     warn,
		Notice:   func(msg string) { fmt.Fprintf(os.Stderr, "p2pcdn: %s\n", msg) },
		Ready: func(files []scan.Entry) {
			if bar != nil {
				bar.Finish()
			}
			for _, f := range files {
				if jsonOut {
					b, _ := f.Info.MarshalJSON()
					fmt.Printf("%s\n", b)
					continue
				}
				fmt.Printf("%s  %10d  %s\n    %s %s\n",
					f.Info.FullHash, f.Info.TotalLength, f.Path, getCmd, f.Info.FullHash)
			}
			fmt.Fprintf(os.Stderr, "seeding %d file(s) through %s%s\n", len(files), mediatorURL, untilText(cctx.Duration("for")))
		},
	})
	return err
}

func untilText(d time.Duration) string {
	if d > 0 {
		return " for " + d.String()
	}
	return "; stop with Ctrl-C"
}

// Command p2pcdn seeds, fetches and mediates files on the p2pcdn
// peer-to-peer content delivery network.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Exit codes, so scripts can tell failures apart.
const (
	exitOK         = 0
	exitFailure    = 1 // anything not listed below
	exitUsage      = 2 // bad arguments
	exitNoPeers    = 3 // no peers found in time
	exitVerifyFail = 4 // content did not verify
	exitNoConnect  = 5 // peers found, none could be connected
)

// exitError carries an exit code to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func usageErrorf(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "p2pcdn",
		Usage:   "a peer-to-peer content delivery network over WebRTC",
		Version: version(),
		Description: "Files are named by their full hash. Seeders announce them to a mediator, " +
			"downloaders find seeders through it and fetch verified pieces over WebRTC data channels.",
		Commands: []*cli.Command{
			hashCommand(),
			seedCommand(),
			getCommand(),
			mediatorCommand(),
			versionCommand(),
		},
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // main reports errors itself
	}
}

// envCPUProfile names a file to write a CPU profile of the whole run to (pprof format), for
// performance work (bench/README.md).
const envCPUProfile = "P2PCDN_CPUPROFILE"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile, err := startProfile(os.Getenv(envCPUProfile))
	if err == nil {
		err = newApp().RunContext(ctx, os.Args)
		stopProfile()
	}
	stop()
	os.Exit(report(err))
}

// startProfile starts a CPU profile into path, if set, and returns what stops it.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envCPUProfile, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", envCPUProfile, err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "p2pcdn: %s: %v\n", envCPUProfile, err)
		}
	}, nil
}

// report prints err for the user and returns the process exit code.
func report(err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "p2pcdn: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

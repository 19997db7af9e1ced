// Command p2pcdn seeds, fetches and mediates files on the p2pcdn
// peer-to-peer content delivery network.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

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

func main() {
	start := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := newApp()
	app.Metadata = map[string]any{startKey: start}
	err := app.RunContext(ctx, os.Args)
	stop()
	os.Exit(report(err))
}

// startKey is the app's Metadata key for when main began (for get --verbose's timeline).
const startKey = "start"

// processStart is when main began, or now when unknown (tests running a command directly).
func processStart(cctx *cli.Context) time.Time {
	if t, ok := cctx.App.Metadata[startKey].(time.Time); ok {
		return t
	}
	return time.Now()
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

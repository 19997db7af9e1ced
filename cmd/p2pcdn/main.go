// Command p2pcdn seeds, fetches and mediates files on the p2pcdn
// peer-to-peer content delivery network.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

// Exit codes, so scripts can tell failures apart.
const (
	exitOK          = 0
	exitFailure     = 1   // anything not listed below
	exitUsage       = 2   // bad arguments
	exitNoPeers     = 3   // no peers found in time
	exitVerifyFail  = 4   // content did not verify
	exitNoConnect   = 5   // peers found, none could be connected
	exitInterrupted = 130 // interrupted (Ctrl-C, SIGTERM), as shells report SIGINT
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

// metaJSON marks, in the app's Metadata, that the running command was asked
// for JSON output: its failure is then printed as a JSON object too.
const metaJSON = "json"

func newApp() *cli.App {
	app := &cli.App{
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
		Metadata:        map[string]any{},
		ExitErrHandler:  func(*cli.Context, error) {}, // main reports errors itself
		OnUsageError:    onUsageError,
	}
	for _, c := range app.Commands {
		if c.OnUsageError == nil {
			c.OnUsageError = onUsageError
		}
	}
	return app
}

// onUsageError turns a flag the command does not know, or a flag value it
// cannot parse, into one line and exit status 2, instead of the whole help.
func onUsageError(cctx *cli.Context, err error, _ bool) error {
	name := "p2pcdn"
	if cctx.Command != nil && cctx.Command.Name != "" {
		name += " " + cctx.Command.Name
	}
	return usageErrorf("%w (see %s --help)", err, name)
}

// envCPUProfile names a file to write a CPU profile of the whole run to (pprof format), for
// performance work (bench/README.md).
const envCPUProfile = "P2PCDN_CPUPROFILE"

func main() {
	start := time.Now()
	// Packages that log through the default logger (the hash cache's
	// warnings) print as the commands' own warnings do.
	slog.SetDefault(slog.New(newUserHandler(func(line string) { fmt.Fprintln(os.Stderr, line) })))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := newApp()
	app.Metadata[startKey] = start
	stopProfile, err := startProfile(os.Getenv(envCPUProfile))
	if err == nil {
		err = app.RunContext(ctx, os.Args)
		stopProfile()
	}
	stop()
	wantJSON, _ := app.Metadata[metaJSON].(bool)
	if !wantJSON && err != nil {
		// A flag error comes before the command could say it wants JSON.
		var ee *exitError
		wantJSON = errors.As(err, &ee) && ee.code == exitUsage && slices.Contains(os.Args[1:], "--json")
	}
	os.Exit(report(os.Stdout, os.Stderr, err, wantJSON))
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

// report prints err for the user, once, on one line (and as a JSON object on
// stdout when the command was asked for JSON), and returns the exit code.
func report(stdout, stderr io.Writer, err error, asJSON bool) int {
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintf(stderr, "p2pcdn: %v\n", err)
	if asJSON {
		json.NewEncoder(stdout).Encode(jsonError(err, code))
	}
	return code
}

// jsonError is the object --json prints for a failure.
func jsonError(err error, code int) map[string]any {
	return map[string]any{"error": err.Error(), "code": code}
}

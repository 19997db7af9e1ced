package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/p2pcdn/p2pcdn/internal/manifest"
	"github.com/p2pcdn/p2pcdn/internal/scan"
	"github.com/p2pcdn/p2pcdn/internal/seed"
	"github.com/p2pcdn/p2pcdn/internal/store"
	"github.com/p2pcdn/p2pcdn/internal/termstatus"
)

func seedCommand() *cli.Command {
	return &cli.Command{
		Name:      "seed",
		Usage:     "hash files and serve them to peers",
		ArgsUsage: "PATH...",
		Description: "Hashes the files (directories recursively; unchanged files come from the hash cache) and " +
			"announces each to the mediator as soon as it is hashed, then serves its pieces to any peer, browser " +
			"or native, until interrupted (Ctrl-C, SIGTERM) or for --for DURATION. Prints each file's hash, size, " +
			"path and the command that fetches it as it goes. A path that cannot be seeded is a warning; seed " +
			"fails only if nothing can be seeded. An idle file costs no open file and no connection: it is " +
			"opened when a peer asks for it.\n\n" +
			"--for counts from when every file is announced, never the hashing, so a cron job can run, e.g. " +
			"hourly, `p2pcdn seed --for 59m DIR`: a slow hash (a changed file, a cold cache) delays the start " +
			"but never cuts the seeding short, and seed exits 0 when the time is up.\n\n" +
			"With --watch, files added, changed or removed under the seeded directories are picked up: " +
			"hashed and announced, or finished, once they have been quiet for a moment.",
		Flags: append(peerFlags("run an embedded mediator on "+defaultMediatorAddr+" (with the demo page at http://"+defaultMediatorAddr+"/)"),
			&cli.DurationFlag{
				Name:        "for",
				Usage:       "seed for `DURATION` (e.g. 10m) from when every file is announced (hashing does not count), then exit 0",
				DefaultText: "until interrupted",
			},
			&cli.BoolFlag{
				Name:  "watch",
				Usage: "follow the seeded directories: seed files added or changed, stop seeding files removed",
			},
			&cli.IntFlag{
				Name:  "max-watches",
				Value: seed.DefaultMaxWatches,
				Usage: "with --watch, watch at most `N` directories",
			},
			&cli.StringFlag{
				Name:  "manifest",
				Usage: "write a manifest of the files found at the start (relative paths and info dictionaries) to `FILE`, for `p2pcdn get --manifest`",
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
		return usageErrorf("name at least one file or directory (see p2pcdn seed --help)")
	}
	forD := cctx.Duration("for")
	if forD < 0 {
		return usageErrorf("--for %s: want a positive duration", forD)
	}
	if cctx.Int("max-watches") < 1 {
		return usageErrorf("--max-watches %d: want at least 1", cctx.Int("max-watches"))
	}
	mediatorURL, err := mediatorFlag(cctx)
	if err != nil {
		return err
	}
	status := termstatus.New(os.Stderr)
	defer status.Close()
	log := newLogger(cctx, status)
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
	warnf := func(format string, args ...any) {
		status.Println(os.Stderr, "p2pcdn: warning: "+fmt.Sprintf(format, args...))
	}
	warn := func(path string, err error) {
		if path == "" {
			warnf("%v", err)
		} else {
			warnf("%s: %v", path, err)
		}
	}

	var cache *store.HashCache
	if !cctx.Bool("no-cache") {
		cache = openCache(func(err error) { warnf("%v (hashing every file)", err) })
	}

	interrupted := cctx.Context
	ctx, cancel := context.WithCancel(interrupted)
	defer cancel()
	if mediatorURL == "" {
		// The embedded mediator outlives the seeding (stop runs after
		// seed.Run returned): stopped on the same signal, it would drop the
		// seeder's own connection under it, which then waits for the goodbye
		// it cannot send and warns that it lost its mediator.
		stop, err := embedMediator(context.WithoutCancel(ctx), defaultMediatorAddr, log)
		if err != nil {
			return err
		}
		defer stop()
		mediatorURL = "ws://" + defaultMediatorAddr
		status.Println(os.Stderr, "no mediator configured: running one on "+mediatorURL)
	}

	var mf *manifestFile
	if path := cctx.String("manifest"); path != "" {
		if mf, err = createManifest(path); err != nil {
			return err
		}
		defer mf.abort()
	}

	out := &seedOutput{status: status, json: cctx.Bool("json"),
		getCmd: getCommandLine(cctx.Bool("ice-loopback"), mediatorURL)}
	var hashed atomic.Int64
	var ready atomic.Bool
	var (
		timerMu sync.Mutex
		timer   *time.Timer
	)
	stopTimer := func() {
		timerMu.Lock()
		if timer != nil {
			timer.Stop()
		}
		timerMu.Unlock()
	}
	defer stopTimer()
	// Say what Ctrl-C does as soon as it is pressed.
	bye := context.AfterFunc(interrupted, func() {
		if ready.Load() {
			status.Println(os.Stderr, "p2pcdn: stopping: telling the mediator we leave")
		}
	})
	defer bye()

	// Hashing a big tree makes garbage fast (buffers, dictionaries) while
	// the table of seeded files grows; a tighter GC while scanning keeps the
	// peak near what is held (100,000 files: ~120 MB instead of ~170 MB).
	// Serving afterwards allocates little, at the usual setting.
	gcPercent := debug.SetGCPercent(50)
	restoreGC := sync.OnceFunc(func() { debug.SetGCPercent(gcPercent) })
	defer restoreGC()

	err = seed.Run(ctx, seed.Config{
		Paths:      cctx.Args().Slice(),
		Mediator:   mediatorURL,
		RTC:        rtcCfg,
		Cache:      cache,
		Logger:     log,
		Watch:      cctx.Bool("watch"),
		MaxWatches: cctx.Int("max-watches"),
		Warn:       warn,
		Notice:     func(msg string) { status.Println(os.Stderr, "p2pcdn: "+msg) },
		Progress: func(n int64) {
			hashed.Add(n)
			out.hashing(hashed.Load())
		},
		File: func(e scan.Entry) {
			out.file(e)
			out.hashing(hashed.Load())
			mf.add(e, warn)
		},
		Same:    func(e scan.Entry, _ string) { mf.add(e, warn) },
		Changed: out.changed,
		Ready: func(n int) {
			ready.Store(true)
			restoreGC()
			status.Clear()
			if mf != nil {
				if err := mf.commit(); err != nil {
					warn("", err)
				} else {
					status.Println(os.Stderr, fmt.Sprintf("manifest of %d file(s) written to %s", mf.n(), mf.path))
				}
			}
			status.Println(os.Stderr, fmt.Sprintf("seeding %d file(s) through %s%s", n, mediatorURL, untilText(forD)))
			if forD > 0 {
				timerMu.Lock()
				timer = time.AfterFunc(forD, cancel)
				timerMu.Unlock()
			}
		},
	})
	if errors.Is(err, seed.ErrNothingToSeed) {
		// Each path's reason was a warning already: say it once.
		return seed.ErrNothingToSeed
	}
	if err != nil {
		if interrupted.Err() != nil {
			return withCode(exitInterrupted, fmt.Errorf("interrupted: %w", err))
		}
		return err
	}
	if interrupted.Err() != nil && !ready.Load() {
		return withCode(exitInterrupted, errors.New("interrupted before seeding started"))
	}
	return nil
}

func untilText(d time.Duration) string {
	if d > 0 {
		return " for " + d.String()
	}
	return "; stop with Ctrl-C"
}

// seedOutput prints what seed does: each file as it is hashed (stdout), a
// status line on a terminal while hashing, and --watch's changes.
type seedOutput struct {
	status *termstatus.Line
	json   bool
	getCmd string

	mu    sync.Mutex
	files int
}

func (o *seedOutput) file(e scan.Entry) {
	o.mu.Lock()
	o.files++
	o.mu.Unlock()
	o.status.Println(os.Stdout, o.describe(e))
}

func (o *seedOutput) describe(e scan.Entry) string {
	if o.json {
		b, _ := e.Info.MarshalJSON()
		return string(b)
	}
	return fmt.Sprintf("%s  %9s  %s\n    %s %s", e.Info.FullHash, humanSize(e.Info.TotalLength), e.Path, o.getCmd, e.Info.FullHash)
}

func (o *seedOutput) hashing(bytes int64) {
	o.mu.Lock()
	n := o.files
	o.mu.Unlock()
	o.status.Set("hashing and announcing: %d file(s), %s hashed…", n, humanSize(bytes))
}

func (o *seedOutput) changed(c seed.Change) {
	switch {
	case c.Kind == seed.Removed && o.json:
		o.status.Println(os.Stdout, fmt.Sprintf(`{"removed":%q,"full_hash":%q}`, c.Path, c.OldHash))
	case c.Kind == seed.Removed:
		o.status.Println(os.Stderr, fmt.Sprintf("removed %s: no longer seeding %s", c.Path, c.OldHash))
	case o.json:
		o.status.Println(os.Stdout, o.describe(*c.Entry))
	default:
		if c.Kind == seed.Changed {
			o.status.Println(os.Stderr, fmt.Sprintf("changed %s: no longer seeding %s", c.Path, c.OldHash))
		}
		o.status.Println(os.Stdout, o.describe(*c.Entry))
	}
}

// manifestFile is a manifest being written: to a temporary file beside the
// target, renamed into place once every file is in it.
type manifestFile struct {
	path  string
	tmp   *os.File
	w     *manifest.Writer
	count atomic.Int64
	done  bool
}

func createManifest(path string) (*manifestFile, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, usageErrorf("--manifest: %w", err)
	}
	m := &manifestFile{path: path, tmp: tmp}
	m.w = manifest.NewWriter(countingWriter{tmp, &m.count})
	return m, nil
}

// countingWriter counts lines, to tell how many files the manifest holds.
type countingWriter struct {
	f *os.File
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			c.n.Add(1)
		}
	}
	return c.f.Write(p)
}

// add writes e to the manifest (none: m is nil).
func (m *manifestFile) add(e scan.Entry, warn func(string, error)) {
	if m == nil {
		return
	}
	if err := m.w.Add(e.Rel, e.Info); err != nil {
		warn(e.Path, fmt.Errorf("not in the manifest: %w", err))
	}
}

func (m *manifestFile) n() int64 { return max(0, m.count.Load()-1) } // less the header

func (m *manifestFile) commit() error {
	if err := m.w.Flush(); err != nil {
		return fmt.Errorf("--manifest: %w", err)
	}
	if err := m.tmp.Chmod(0o644); err != nil { // it is meant to be published
		return fmt.Errorf("--manifest: %w", err)
	}
	if err := m.tmp.Close(); err != nil {
		return fmt.Errorf("--manifest: %w", err)
	}
	if err := os.Rename(m.tmp.Name(), m.path); err != nil {
		return fmt.Errorf("--manifest: %w", err)
	}
	m.done = true
	return nil
}

// abort removes the temporary file of a manifest never committed.
func (m *manifestFile) abort() {
	if !m.done {
		m.tmp.Close()
		os.Remove(m.tmp.Name())
	}
}

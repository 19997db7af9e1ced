package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/fetch"
	"github.com/p2pcdn/p2pcdn/internal/timeline"
)

// maxInfoFile bounds the --info file; a dictionary of a 40 GB file is ~8 MB.
const maxInfoFile = 16 << 20

func getCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "download a file by its full hash",
		ArgsUsage: "HASH",
		Description: "Finds peers through the mediator, fetches the info dictionary from them (or takes --info, " +
			"needed with prototype peers), downloads from several peers at once, verifies every piece and " +
			"moves the file into place only when it is complete. An interrupted download resumes from its " +
			".part file. Shares the pieces it has while downloading.\n\n" +
			"Exit status: 0 complete and verified, 2 bad arguments, 3 no peers found in time, " +
			"4 verification failed, 5 peers found but none could be connected, 1 anything else.",
		Flags: append(peerFlags(),
			&cli.StringFlag{
				Name:    "output",
				Aliases: []string{"o"},
				Usage:   "write to `PATH` (a file name, or an existing directory to put the file in); default: the file's own name in the current directory",
			},
			&cli.StringFlag{
				Name:  "info",
				Usage: "read the info dictionary from `FILE` (JSON, as `p2pcdn hash --json` prints) instead of fetching it from peers",
			},
			&cli.DurationFlag{
				Name:  "timeout",
				Value: fetch.DefaultTimeout,
				Usage: "give up when no peer is found, or nothing is received, for `DURATION`",
			},
			&cli.BoolFlag{
				Name:  "json",
				Usage: "print a JSON summary on stdout when done",
			},
		),
		Action: runGet,
	}
}

func runGet(cctx *cli.Context) error {
	if cctx.NArg() != 1 {
		return usageErrorf("get: want exactly one HASH, got %d arguments", cctx.NArg())
	}
	hash := cctx.Args().First()
	if !content.ValidHash(hash) {
		return usageErrorf("get: %q is not a full hash (40 lowercase hex characters)", hash)
	}
	if cctx.Duration("timeout") <= 0 {
		return usageErrorf("--timeout %s: want a positive duration", cctx.Duration("timeout"))
	}
	var info *content.Info
	if path := cctx.String("info"); path != "" {
		var err error
		if info, err = readInfo(path); err != nil {
			return err
		}
		if info.FullHash != hash {
			return withCode(exitVerifyFail, fmt.Errorf("--info %s describes %s, not %s", path, info.FullHash, hash))
		}
	}
	log := newLogger(cctx)
	rtcCfg, err := rtcConfig(cctx, log)
	if err != nil {
		return err
	}
	mediatorURL := cctx.String("mediator")
	if mediatorURL == "" {
		mediatorURL = "ws://" + defaultMediatorAddr
	}

	// --verbose shows where the time went, step by step (the round trips of a download).
	ctx := cctx.Context
	var tl *timeline.Timeline
	if cctx.Bool("verbose") {
		tl = timeline.New(processStart(cctx))
		tl.Mark("start")
		ctx = timeline.NewContext(ctx, tl)
	}
	bar := newGetBar(os.Stderr)
	res, err := fetch.Run(ctx, fetch.Config{
		Hash:     hash,
		Info:     info,
		Output:   cctx.String("output"),
		Mediator: mediatorURL,
		RTC:      rtcCfg,
		Timeout:  cctx.Duration("timeout"),
		Logger:   log,
		Progress: bar.update,
	})
	bar.finish()
	if tl != nil {
		tl.WriteTo(os.Stderr)
	}
	switch {
	case errors.Is(err, fetch.ErrNoPeers):
		return withCode(exitNoPeers, err)
	case errors.Is(err, fetch.ErrVerify):
		return withCode(exitVerifyFail, err)
	case errors.Is(err, fetch.ErrUnreachable):
		return withCode(exitNoConnect, err)
	case err != nil:
		return err
	}
	if cctx.Bool("json") {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"full_hash":    res.Info.FullHash,
			"file_name":    res.Info.FileName,
			"path":         res.Path,
			"total_length": res.Info.TotalLength,
			"downloaded":   res.Downloaded,
			"uploaded":     res.Uploaded,
			"resumed":      res.Resumed,
			"peers":        res.Peers,
			"elapsed_ms":   res.Elapsed.Milliseconds(),
		})
	}
	fmt.Fprintf(os.Stderr, "%s: %d bytes, verified, from %d peer(s) in %s\n",
		res.Path, res.Info.TotalLength, res.Peers, res.Elapsed.Round(time.Millisecond))
	return nil
}

// readInfo reads and validates an info dictionary file.
func readInfo(path string) (*content.Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErrorf("--info: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInfoFile+1))
	if err != nil {
		return nil, usageErrorf("--info: %w", err)
	}
	if len(data) > maxInfoFile {
		return nil, usageErrorf("--info %s: larger than %d bytes", path, maxInfoFile)
	}
	info, err := content.ParseInfo(data)
	if err != nil {
		return nil, withCode(exitVerifyFail, fmt.Errorf("--info %s: %w", path, err))
	}
	return info, nil
}

// getBar is the download progress bar; inert when stderr is no terminal.
type getBar struct {
	bar *progressbar.ProgressBar
	w   *os.File
}

func newGetBar(w *os.File) *getBar {
	if !term.IsTerminal(int(w.Fd())) {
		return &getBar{}
	}
	return &getBar{w: w}
}

func (b *getBar) update(p fetch.Progress) {
	if b.w == nil || p.Total == 0 {
		return
	}
	if b.bar == nil {
		b.bar = progressbar.NewOptions64(p.Total,
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	b.bar.Describe(fmt.Sprintf("%s  %d peer(s)", content.SafeName(p.Info.FileName), p.Peers))
	b.bar.Set64(p.Have)
}

func (b *getBar) finish() {
	if b.bar != nil {
		b.bar.Finish()
	}
}

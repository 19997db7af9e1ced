package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/fetch"
	"github.com/p2pcdn/p2pcdn/internal/manifest"
	"github.com/p2pcdn/p2pcdn/internal/termstatus"
	"github.com/p2pcdn/p2pcdn/internal/timeline"
)

// maxInfoFile bounds the --info file; a dictionary of a 40 GB file is ~8 MB.
const maxInfoFile = 16 << 20

// defaultParallel is how many files `get` fetches at once.
const defaultParallel = 8

func getCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "download files by their full hash",
		ArgsUsage: "HASH...",
		Description: "Finds peers through the mediator, fetches the info dictionary from them (or takes --info, " +
			"needed with prototype peers), downloads from several peers at once, verifies every piece and " +
			"moves the file into place only when it is complete. An interrupted download resumes from its " +
			".part file. Shares the pieces it has while downloading. A file already at the target with the " +
			"same content is left alone (\"already there, verified\").\n\n" +
			"Several hashes are fetched in one process, over one mediator connection, with one progress line. " +
			"--manifest FILE (written by `p2pcdn seed --manifest` or `p2pcdn hash --manifest`) mirrors a whole " +
			"tree with its folders into -o (default: the current directory); hashes given with it pick " +
			"files of the manifest.\n\n" +
			"Exit status: 0 complete and verified, 2 bad arguments, 3 no peers found in time, " +
			"4 verification failed, 5 peers found but none could be connected, 130 interrupted, " +
			"1 anything else; with several files, that of the " +
			"first that failed.",
		Flags: append(peerFlags("ws://"+defaultMediatorAddr+", where `p2pcdn seed` runs one when it has none"),
			&cli.StringFlag{
				Name:    "output",
				Aliases: []string{"o"},
				Usage: "write to `PATH`: a file name, or a directory to put the file in; with several files or " +
					"--manifest, the directory (made if missing); default: the current directory",
			},
			&cli.StringFlag{
				Name:  "info",
				Usage: "read the info dictionary from `FILE` (JSON, as `p2pcdn hash --json` prints) instead of fetching it from peers",
			},
			&cli.StringFlag{
				Name:  "manifest",
				Usage: "fetch the files of the manifest `FILE` into their folders under -o",
			},
			&cli.IntFlag{
				Name:  "parallel",
				Value: defaultParallel,
				Usage: "fetch at most `N` files at once",
			},
			&cli.DurationFlag{
				Name:  "timeout",
				Value: fetch.DefaultTimeout,
				Usage: "give up on a file when no peer is found, or nothing is received, for `DURATION`",
			},
			&cli.BoolFlag{
				Name:  "json",
				Usage: "print one JSON object per file on stdout (a summary, or {\"full_hash\",\"error\",\"code\"})",
			},
		),
		Action: runGet,
	}
}

// job is one file to fetch.
type job struct {
	hash   string
	info   *content.Info // nil: fetched from peers
	output string        // fetch.Config.Output
	label  string        // how progress names it before its name is known
	copies []string      // more targets for the same content (a manifest's duplicates)
}

func runGet(cctx *cli.Context) error {
	cctx.App.Metadata[metaJSON] = cctx.Bool("json")
	jobs, err := getJobs(cctx)
	if err != nil {
		return err
	}
	if cctx.Duration("timeout") <= 0 {
		return usageErrorf("--timeout %s: want a positive duration", cctx.Duration("timeout"))
	}
	if cctx.Int("parallel") < 1 {
		return usageErrorf("--parallel %d: want at least 1", cctx.Int("parallel"))
	}
	mediatorURL, err := mediatorFlag(cctx)
	if err != nil {
		return err
	}
	if mediatorURL == "" {
		mediatorURL = "ws://" + defaultMediatorAddr
	}
	status := termstatus.New(os.Stderr)
	defer status.Close()
	log := newLogger(cctx, status)
	rtcCfg, err := rtcConfig(cctx, log)
	if err != nil {
		return err
	}

	ui := &getUI{status: status, verbose: cctx.Bool("verbose"), stderr: os.Stderr, jobs: jobs,
		progress: make([]fetch.Progress, len(jobs)), state: make([]jobState, len(jobs)), start: time.Now()}
	status.Set("connecting to the mediator at %s…", mediatorURL)

	ctx := cctx.Context
	// --verbose shows where the time went, step by step: the round trips of a download (with several
	// files, the first of each step).
	var tl *timeline.Timeline
	if cctx.Bool("verbose") {
		tl = timeline.New(processStart(cctx))
		tl.Mark("start")
		ctx = timeline.NewContext(ctx, tl)
	}
	session, err := fetch.Dial(ctx, fetch.Config{Mediator: mediatorURL, RTC: rtcCfg, Logger: log, GetPeers: hashesOf(jobs)})
	ui.show()
	if err != nil {
		if ctx.Err() != nil {
			return withCode(exitInterrupted, errors.New("interrupted while connecting to the mediator"))
		}
		return err
	}
	defer session.Close()

	results := make([]*fetch.Result, len(jobs))
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, cctx.Int("parallel"))
	var wg sync.WaitGroup
	for i, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			ui.begin(i)
			results[i], errs[i] = session.Get(ctx, fetch.Config{
				Hash:     j.hash,
				Info:     j.info,
				Output:   j.output,
				Timeout:  cctx.Duration("timeout"),
				Logger:   log,
				Progress: func(p fetch.Progress) { ui.update(i, p) },
			})
			if errs[i] == nil {
				errs[i] = placeCopies(ctx, results[i], j.copies)
			}
			ui.end(i, results[i], errs[i])
		})
	}
	wg.Wait()
	status.Clear()
	if tl != nil {
		tl.WriteTo(os.Stderr)
	}
	return ui.report(cctx, results, errs)
}

// hashesOf lists the jobs' hashes, which the session asks the mediator for as it connects.
func hashesOf(jobs []job) []string {
	hashes := make([]string, len(jobs))
	for i, j := range jobs {
		hashes[i] = j.hash
	}
	return hashes
}

// getJobs turns the arguments into the files to fetch.
func getJobs(cctx *cli.Context) ([]job, error) {
	var hashes []string
	seen := map[string]bool{}
	for _, a := range cctx.Args().Slice() {
		h := strings.ToLower(a) // hashes are hex: accept them as users paste them
		if !content.ValidHash(h) {
			return nil, usageErrorf("%q is not a full hash (40 hex characters)", a)
		}
		if !seen[h] {
			seen[h] = true
			hashes = append(hashes, h)
		}
	}
	output := cctx.String("output")
	if mf := cctx.String("manifest"); mf != "" {
		if cctx.String("info") != "" {
			return nil, usageErrorf("--manifest and --info: the manifest holds the info dictionaries; drop --info")
		}
		return manifestJobs(mf, output, seen)
	}
	if len(hashes) == 0 {
		return nil, usageErrorf("name at least one HASH (or --manifest FILE; see p2pcdn get --help)")
	}
	var info *content.Info
	if path := cctx.String("info"); path != "" {
		if len(hashes) != 1 {
			return nil, usageErrorf("--info describes one file; name only its HASH")
		}
		var err error
		if info, err = readInfo(path); err != nil {
			return nil, err
		}
		if info.FullHash != hashes[0] {
			return nil, withCode(exitVerifyFail, fmt.Errorf("--info %s describes %s, not %s", path, info.FullHash, hashes[0]))
		}
	}
	if len(hashes) > 1 && output != "" {
		// Several files go into one directory.
		if fi, err := os.Stat(output); err == nil && !fi.IsDir() {
			return nil, usageErrorf("-o %s: with several files, want a directory, not a file", output)
		}
		if err := os.MkdirAll(output, 0o755); err != nil {
			return nil, usageErrorf("-o: %w", err)
		}
		output += string(os.PathSeparator)
	}
	jobs := make([]job, len(hashes))
	for i, h := range hashes {
		jobs[i] = job{hash: h, info: info, output: output, label: h[:12] + "…"}
	}
	return jobs, nil
}

// manifestJobs reads a manifest: its files (or those of pick) go to their
// paths under root.
func manifestJobs(path, root string, pick map[string]bool) ([]job, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErrorf("--manifest: %w", err)
	}
	defer f.Close()
	entries, err := manifest.Read(f, manifest.Limits{})
	if err != nil {
		return nil, usageErrorf("--manifest %s: %w", path, err)
	}
	if root == "" {
		root = "."
	}
	var jobs []job
	byHash := map[string]int{} // a hash's job; its other paths are copies
	for _, e := range entries {
		if len(pick) > 0 && !pick[e.Info.FullHash] {
			continue
		}
		target, err := manifest.Target(root, e.Path)
		if err != nil {
			return nil, err
		}
		if i, dup := byHash[e.Info.FullHash]; dup {
			jobs[i].copies = append(jobs[i].copies, target)
			continue
		}
		byHash[e.Info.FullHash] = len(jobs)
		jobs = append(jobs, job{hash: e.Info.FullHash, info: e.Info, output: target, label: e.Path})
	}
	found := func(h string) bool { _, ok := byHash[h]; return ok }
	for h := range pick {
		if !found(h) {
			return nil, usageErrorf("%s is not in the manifest %s", h, path)
		}
	}
	if len(jobs) == 0 {
		return nil, usageErrorf("--manifest %s lists no files", path)
	}
	return jobs, nil
}

// placeCopies puts the content of res at each of paths too (a manifest
// naming one content at several paths): a file there already with that
// content is left alone, any other file is never overwritten.
func placeCopies(ctx context.Context, res *fetch.Result, paths []string) error {
	for _, p := range paths {
		if fi, err := os.Lstat(p); err == nil {
			got, herr := content.HashFile(ctx, p, nil)
			if fi.Mode().IsRegular() && herr == nil && got.FullHash == res.Info.FullHash {
				continue
			}
			return fmt.Errorf("%s: %w with other content; remove it or choose another -o", p, fetch.ErrExists)
		}
		if err := copyFile(res.Path, p); err != nil {
			return err
		}
	}
	return nil
}

// copyFile copies src to dst through a temporary file beside dst, so dst
// appears only complete.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".copy*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the link
	_, err = io.Copy(tmp, in)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Link(tmp.Name(), dst) // fails if dst appeared meanwhile: never overwrite
	}
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
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
		return nil, usageErrorf("--info %s: larger than %s", path, humanSize(maxInfoFile))
	}
	info, err := content.ParseInfo(data)
	if err != nil {
		return nil, withCode(exitVerifyFail, fmt.Errorf("--info %s: %w", path, err))
	}
	return info, nil
}

// getCode is the exit code of one file's failure.
func getCode(err error) int {
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, fetch.ErrNoPeers):
		return exitNoPeers
	case errors.Is(err, fetch.ErrVerify):
		return exitVerifyFail
	case errors.Is(err, fetch.ErrUnreachable):
		return exitNoConnect
	case errors.Is(err, fetch.ErrInterrupted), errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	return exitFailure
}

// jobState is where one file is, for the status line.
type jobState int

const (
	waiting jobState = iota // not started (--parallel)
	running
	finished
	failed
)

// getUI shows what `get` does: a status line on a terminal (looking for
// peers, connecting, connected, then bytes), one line per finished file,
// and with --verbose and no terminal the steps as plain lines.
type getUI struct {
	status  *termstatus.Line
	verbose bool
	stderr  io.Writer
	jobs    []job
	start   time.Time

	mu       sync.Mutex
	progress []fetch.Progress
	state    []jobState
	phase    []string // the last step printed per file (--verbose)
}

func (u *getUI) begin(i int) {
	u.mu.Lock()
	u.state[i] = running
	u.mu.Unlock()
	u.step(i, fetch.Progress{})
	u.show()
}

func (u *getUI) update(i int, p fetch.Progress) {
	u.mu.Lock()
	u.progress[i] = p
	u.mu.Unlock()
	u.step(i, p)
	u.show()
}

func (u *getUI) end(i int, res *fetch.Result, err error) {
	u.mu.Lock()
	if err != nil {
		u.state[i] = failed
	} else {
		u.state[i] = finished
	}
	u.mu.Unlock()
	u.show()
}

// phaseOf names the step a download is at.
func phaseOf(p fetch.Progress) string {
	found := max(p.Found, p.Peers+p.Connecting)
	switch {
	case p.Peers > 0 && p.Total > 0:
		return "downloading"
	case p.Peers > 0:
		return fmt.Sprintf("connected to %d peer(s), fetching the info dictionary", p.Peers)
	case p.Connecting > 0:
		return fmt.Sprintf("%d peer(s) found, connecting", found)
	case found > 0:
		return fmt.Sprintf("%d peer(s) found", found)
	}
	return "looking for peers"
}

// step prints a new phase of file i as a line, with --verbose and no
// terminal (a terminal shows it on the status line).
func (u *getUI) step(i int, p fetch.Progress) {
	if !u.verbose || u.status.Active() {
		return
	}
	ph := phaseOf(p)
	if p.Total > 0 && p.Peers > 0 {
		ph = fmt.Sprintf("downloading %s from %d peer(s)", humanSize(p.Total), p.Peers)
	}
	u.mu.Lock()
	if u.phase == nil {
		u.phase = make([]string, len(u.jobs))
	}
	same := u.phase[i] == ph
	u.phase[i] = ph
	u.mu.Unlock()
	if !same {
		fmt.Fprintf(u.stderr, "p2pcdn: %s: %s\n", u.jobs[i].label, ph)
	}
}

// show redraws the status line.
func (u *getUI) show() {
	if !u.status.Active() {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	var have, total, down int64
	var peers, nDone, nRunning int
	var one fetch.Progress
	for i, p := range u.progress {
		switch u.state[i] {
		case finished:
			nDone++
		case running:
			nRunning++
			one = p
			peers += p.Peers
		}
		if p.Total > 0 {
			have += p.Have
			total += p.Total
			down += p.Downloaded
		}
	}
	rate := ""
	if el := time.Since(u.start).Seconds(); down > 0 && el > 0.5 {
		rate = "  " + humanSize(int64(float64(down)/el)) + "/s"
	}
	if len(u.jobs) == 1 {
		j := u.jobs[0]
		if one.Total == 0 || one.Peers == 0 && one.Have == 0 {
			u.status.Set("%s: %s…", j.label, phaseOf(one))
			return
		}
		name := content.SafeName(one.Info.FileName)
		u.status.Set("%s  %3d%%  %s of %s%s  %d peer(s)", name, percent(one.Have, one.Total),
			humanSize(one.Have), humanSize(one.Total), rate, one.Peers)
		return
	}
	bytes := ""
	if total > 0 {
		bytes = fmt.Sprintf("  %s of %s%s", humanSize(have), humanSize(total), rate)
	}
	u.status.Set("%d/%d files%s  %d fetching from %d peer(s)", nDone, len(u.jobs), bytes, nRunning, peers)
}

func percent(a, b int64) int64 {
	if b <= 0 {
		return 0
	}
	return a * 100 / b
}

// report prints each file's outcome (lines for people on stderr, or JSON
// objects on stdout) and returns the error of the first file that failed.
func (u *getUI) report(cctx *cli.Context, results []*fetch.Result, errs []error) error {
	asJSON := cctx.Bool("json")
	enc := json.NewEncoder(os.Stdout)
	var first error
	failures := 0
	for i, res := range results {
		err := errs[i]
		if err != nil {
			code := getCode(err)
			err = withCode(code, describeGetError(u.jobs[i], err))
			if first == nil {
				first = err
			}
			failures++
			if asJSON {
				obj := jsonError(err, code)
				obj["full_hash"] = u.jobs[i].hash
				enc.Encode(obj)
			}
			if len(u.jobs) > 1 {
				fmt.Fprintf(u.stderr, "p2pcdn: %v\n", err)
			}
			continue
		}
		if asJSON {
			enc.Encode(map[string]any{
				"full_hash":      res.Info.FullHash,
				"file_name":      res.Info.FileName,
				"path":           res.Path,
				"total_length":   res.Info.TotalLength,
				"downloaded":     res.Downloaded,
				"uploaded":       res.Uploaded,
				"resumed":        res.ResumedBytes,
				"resumed_pieces": res.Resumed,
				"peers":          res.Peers,
				"elapsed_ms":     res.Elapsed.Milliseconds(),
				"already_there":  res.AlreadyThere,
			})
			continue
		}
		if res.AlreadyThere {
			fmt.Fprintf(u.stderr, "%s: %s, already there, verified\n", res.Path, humanSize(res.Info.TotalLength))
			continue
		}
		resumed := ""
		if res.ResumedBytes > 0 {
			resumed = fmt.Sprintf(" (%s resumed)", humanSize(res.ResumedBytes))
		}
		fmt.Fprintf(u.stderr, "%s: %s, verified, from %d peer(s) in %s%s\n",
			res.Path, humanSize(res.Info.TotalLength), res.Peers, res.Elapsed.Round(time.Millisecond), resumed)
	}
	if first == nil {
		if len(u.jobs) > 1 && !asJSON {
			fmt.Fprintf(u.stderr, "%d files verified in %s\n", len(u.jobs), time.Since(u.start).Round(time.Millisecond))
		}
		return nil
	}
	if asJSON {
		cctx.App.Metadata[metaJSON] = false // every file has its object already
	}
	if len(u.jobs) == 1 {
		return first
	}
	var ee *exitError
	errors.As(first, &ee)
	// Each failure was printed above; main prints this one line more.
	return withCode(ee.code, fmt.Errorf("%d of %d files failed", failures, len(u.jobs)))
}

// describeGetError words one file's failure for the user.
func describeGetError(j job, err error) error {
	if part, have, total, ok := fetch.PartialDownload(err); ok {
		return fmt.Errorf("interrupted; %s keeps the %s of %s verified so far, and running the same command again resumes",
			part, humanSize(have), humanSize(total))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, fetch.ErrInterrupted) {
		return fmt.Errorf("%s: interrupted before any data arrived", j.label)
	}
	if msg := err.Error(); strings.Contains(msg, j.hash) || strings.Contains(msg, j.label) {
		return err
	}
	return fmt.Errorf("%s: %w", j.label, err)
}

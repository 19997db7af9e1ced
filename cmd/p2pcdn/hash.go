package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/scan"
	"github.com/p2pcdn/p2pcdn/internal/store"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// progressMinBytes is how much hashing it takes before a progress bar is
// worth drawing.
const progressMinBytes = 64 << 20

func hashCommand() *cli.Command {
	return &cli.Command{
		Name:      "hash",
		Usage:     "print the info dictionary (full hash, pieces) of files without sharing them",
		ArgsUsage: "PATH...",
		Description: "Hashes each named file, and every file under each named directory (recursively), the way\n" +
			"the prototype does. Symbolic links are followed for named paths and for files inside directories;\n" +
			"links to directories inside a walk are skipped. Empty files, special files and unfinished\n" +
			"downloads (*.part) found inside directories are skipped with a warning on stderr.\n\n" +
			"Results of earlier runs are reused from a cache in the user cache directory while a file's\n" +
			"path, size, modification and change time, inode and device are unchanged.\n\n" +
			"Exits 1 if any named path could not be hashed, 2 on bad usage.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one info dictionary per line as JSON (the prototype's exact bytes) and nothing else on stdout"},
			&cli.BoolFlag{Name: "no-cache", Usage: "hash every file again and leave the hash cache alone"},
		},
		Action: runHash,
	}
}

func runHash(c *cli.Context) error {
	paths := c.Args().Slice()
	if len(paths) == 0 {
		return usageErrorf("hash: name at least one file or directory (see p2pcdn hash --help)")
	}
	stdout, stderr := c.App.Writer, c.App.ErrWriter
	warn := func(path string, err error) { fmt.Fprintf(stderr, "p2pcdn: warning: %s: %v\n", path, err) }

	var cache *store.HashCache
	if !c.Bool("no-cache") {
		cache = openCache(warn)
	}
	opt := scan.Options{Cache: cache, Warn: warn}
	bar := hashProgress(c.Context, stderr, paths, cache)
	if bar != nil {
		opt.Progress = func(n int64) { bar.Add64(n) }
	}
	entries, err := scan.Files(c.Context, paths, opt)
	if bar != nil {
		bar.Finish()
	}
	if cache != nil {
		if serr := cache.Save(); serr != nil {
			warn("hash cache", serr)
		}
	}
	for _, e := range entries {
		if c.Bool("json") {
			b, _ := e.Info.MarshalJSON()
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			fmt.Fprintf(stdout, "%s  %9s  %s\n", e.Info.FullHash, humanSize(e.Info.TotalLength), e.Path)
		}
	}
	if err != nil {
		return withCode(exitFailure, fmt.Errorf("hash: %w", err))
	}
	return nil
}

// openCache opens the default hash cache, or returns nil (hash everything)
// when there is no usable cache directory.
func openCache(warn func(string, error)) *store.HashCache {
	path, err := store.DefaultHashCachePath()
	if err != nil {
		warn("hash cache", err)
		return nil
	}
	cache, err := store.OpenHashCache(path)
	if err != nil {
		warn("hash cache", err)
		return nil
	}
	return cache
}

// hashProgress returns a progress bar on stderr when it is a terminal and
// there is enough to hash to be worth one; nil otherwise.
func hashProgress(ctx context.Context, stderr io.Writer, paths []string, cache *store.HashCache) *progressbar.ProgressBar {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	total := scan.TotalSize(ctx, paths, cache)
	if total < progressMinBytes {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("hashing"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/p2pcdn/p2pcdn/internal/scan"
	"github.com/p2pcdn/p2pcdn/internal/store"
	"github.com/p2pcdn/p2pcdn/internal/termstatus"
)

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
			"With --manifest FILE it also writes a manifest (each file's path relative to the named directory, and its\n" +
			"info dictionary) that `p2pcdn get --manifest FILE` mirrors with its folders.\n\n" +
			"Exits 1 if any named path could not be hashed, 2 on bad usage.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one info dictionary per line as JSON (the prototype's exact bytes) and nothing else on stdout"},
			&cli.BoolFlag{Name: "no-cache", Usage: "hash every file again and leave the hash cache alone"},
			&cli.StringFlag{Name: "manifest", Usage: "also write a manifest of the files to `FILE`, for `p2pcdn get --manifest`"},
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
	status := termstatus.New(nil)
	if f, ok := stderr.(*os.File); ok {
		status = termstatus.New(f)
	}
	defer status.Close()
	warn := func(path string, err error) {
		status.Println(stderr, fmt.Sprintf("p2pcdn: warning: %s: %v", path, err))
	}

	var cache *store.HashCache
	if !c.Bool("no-cache") {
		cache = openCache(func(err error) { status.Println(stderr, fmt.Sprintf("p2pcdn: warning: %v (hashing every file)", err)) })
	}
	var mf *manifestFile
	if path := c.String("manifest"); path != "" {
		var err error
		if mf, err = createManifest(path); err != nil {
			return err
		}
		defer mf.abort()
	}
	var hashed int64
	files := 0
	opt := scan.Options{Cache: cache, Warn: warn, Progress: func(n int64) {
		hashed += n
		status.Set("hashing: %d file(s), %s…", files, humanSize(hashed))
	}}
	err := scan.Walk(c.Context, paths, opt, func(e scan.Entry) error {
		files++
		if c.Bool("json") {
			b, _ := e.Info.MarshalJSON()
			status.Println(stdout, string(b))
		} else {
			status.Println(stdout, fmt.Sprintf("%s  %9s  %s", e.Info.FullHash, humanSize(e.Info.TotalLength), e.Path))
		}
		if mf != nil {
			if err := mf.w.Add(e.Rel, e.Info); err != nil {
				warn(e.Path, fmt.Errorf("not in the manifest: %w", err))
			}
		}
		return nil
	})
	status.Clear()
	if cache != nil {
		if serr := cache.Save(); serr != nil {
			status.Println(stderr, fmt.Sprintf("p2pcdn: warning: %v", serr))
		}
	}
	if mf != nil && c.Context.Err() == nil {
		if merr := mf.commit(); merr != nil {
			return merr
		}
	}
	if err != nil {
		if c.Context.Err() != nil {
			return withCode(exitInterrupted, errors.New("interrupted"))
		}
		return withCode(exitFailure, err)
	}
	return nil
}

// openCache opens the default hash cache, or returns nil (hash everything)
// when there is no usable cache directory.
func openCache(warn func(error)) *store.HashCache {
	path, err := store.DefaultHashCachePath()
	if err != nil {
		warn(err)
		return nil
	}
	cache, err := store.OpenHashCache(path)
	if err != nil {
		warn(err)
		return nil
	}
	return cache
}

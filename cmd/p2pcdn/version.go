package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// version describes this build: the module version (a tag, a pseudo-version,
// or "(devel)" for a build from a checkout) and the VCS revision Go stamped
// into the binary, with "+dirty" when the checkout had uncommitted changes.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (built without module information)"
	}
	return versionOf(bi)
}

// versionOf is version for the build bi.
func versionOf(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, when string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	var b strings.Builder
	b.WriteString(v)
	// A build in a checkout is stamped with a pseudo-version that already
	// holds the revision (and +dirty): v0.0.0-20260102150405-0123456789ab.
	if rev != "" && !strings.Contains(v, rev[:min(12, len(rev))]) {
		b.WriteString(" revision ")
		b.WriteString(rev[:min(12, len(rev))])
		if dirty {
			b.WriteString("+dirty")
		}
		if when != "" {
			b.WriteString(" (" + when + ")")
		}
	}
	b.WriteString(", " + bi.GoVersion)
	return b.String()
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:      "version",
		Usage:     "print the version of this binary",
		ArgsUsage: " ",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "p2pcdn version %s\n", version()) // as --version prints it
			return nil
		},
	}
}

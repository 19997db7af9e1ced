package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// getCommandLine is the `get` command seed prints for each file, written so
// the user can paste it into another terminal: this very binary by the name
// the shell finds it under, else by its absolute path; `go run ./cmd/p2pcdn`
// when it is a binary `go run` built in a temporary directory (gone once
// seed exits).
func getCommandLine(iceLoopback bool, mediatorURL string) string {
	cmd := selfCommand(os.Args[0])
	if iceLoopback {
		cmd += " get --ice-loopback"
	} else {
		cmd += " get"
	}
	return cmd + " --mediator " + shellQuote(mediatorURL)
}

// selfCommand names this binary as a shell command.
func selfCommand(arg0 string) string {
	exe, err := os.Executable()
	if err != nil {
		exe = arg0
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	if isGoRunBuild(exe) {
		return "go run ./cmd/p2pcdn"
	}
	base := filepath.Base(arg0)
	if found, err := exec.LookPath(base); err == nil && !strings.ContainsRune(arg0, filepath.Separator) {
		if real, err := filepath.EvalSymlinks(found); err == nil && real == exe {
			return shellQuote(base) // found on PATH under the name the user typed
		}
	}
	if found, err := exec.LookPath("p2pcdn"); err == nil {
		if real, err := filepath.EvalSymlinks(found); err == nil && real == exe {
			return "p2pcdn"
		}
	}
	return shellQuote(exe)
}

// isGoRunBuild reports whether exe is a binary `go run` built: it lives in
// a go-build directory under the temporary directory.
func isGoRunBuild(exe string) bool {
	tmp := os.TempDir()
	if real, err := filepath.EvalSymlinks(tmp); err == nil {
		tmp = real
	}
	rel, err := filepath.Rel(tmp, exe)
	return err == nil && !strings.HasPrefix(rel, "..") && strings.Contains(rel, "go-build")
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe
// characters.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@+,%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

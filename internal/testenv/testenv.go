// Package testenv holds helpers shared by tests: locating the repository and the Node toolchain, and
// installing a test directory's npm packages once.
package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// RepoRoot returns the directory containing go.mod, searching upward from the working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testenv: working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: no go.mod found above the working directory")
		}
		dir = parent
	}
}

// Node returns the path of the node executable or fails the test.
func Node(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("testenv: node is not installed (needed to run third-party Socket.IO peers): %v", err)
	}
	return p
}

// NPMInstall runs `npm ci --no-audit --no-fund` in dir when node_modules is missing or older than
// package-lock.json. An exclusive lock on a file named after dir keeps parallel test processes (go test runs one per
// package) from installing into the same directory at once.
func NPMInstall(t testing.TB, dir string) {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("testenv: npm is not installed (needed to install the test's Node packages in %s): %v", dir, err)
	}
	lock := filepath.Join(dir, "package-lock.json")
	if _, err := os.Stat(lock); err != nil {
		t.Fatalf("testenv: %s has no package-lock.json: %v", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// The lock lives outside the repository so it never shows up as an untracked file.
	sum := sha256.Sum256([]byte(abs))
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "p2pcdn-npm-"+hex.EncodeToString(sum[:8])+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("testenv: open install lock: %v", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("testenv: take install lock: %v", err)
	}
	defer func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }()
	if fresh(dir) {
		return
	}
	start := time.Now()
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: npm ci in %s failed: %v\n%s", dir, err, out)
	}
	// npm ci may keep the old mtime on an unchanged tree; mark it as installed now.
	now := time.Now()
	_ = os.Chtimes(filepath.Join(dir, "node_modules"), now, now)
	t.Logf("testenv: npm ci in %s took %v", dir, time.Since(start).Round(time.Millisecond))
}

// fresh reports whether dir/node_modules exists and is newer than dir/package-lock.json.
func fresh(dir string) bool {
	lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return false
	}
	mods, err := os.Stat(filepath.Join(dir, "node_modules"))
	if errors.Is(err, os.ErrNotExist) || err != nil {
		return false
	}
	return !mods.ModTime().Before(lock.ModTime())
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpSaysEachCommandsOwnDefault: seed's help describes seed's default
// mediator, get's help get's.
func TestHelpSaysEachCommandsOwnDefault(t *testing.T) {
	seedHelp, _, _ := runApp(t, "seed", "--help")
	getHelp, _, _ := runApp(t, "get", "--help")
	if !strings.Contains(seedHelp, "run an embedded mediator") || strings.Contains(seedHelp, "get uses") {
		t.Errorf("seed --help:\n%s", seedHelp)
	}
	if strings.Contains(getHelp, "embedded mediator on") || !strings.Contains(getHelp, "default: ws://127.0.0.1:8888") {
		t.Errorf("get --help:\n%s", getHelp)
	}
	if !strings.Contains(seedHelp, "hashing does not count") || !strings.Contains(seedHelp, "cron") {
		t.Errorf("seed --help does not explain --for for cron:\n%s", seedHelp)
	}
}

// TestHashCacheWarningOnce: a cache that cannot be saved is one warning,
// naming the cache once.
func TestHashCacheWarningOnce(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "cache")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil { // a file where the cache folder goes
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", blocker)
	file := filepath.Join(dir, "f.bin")
	if err := os.WriteFile(file, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runApp(t, "hash", file)
	if code != 0 {
		t.Fatalf("hash exited %d: %s", code, stderr)
	}
	if strings.Count(stderr, "hash cache") != 1 || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("stderr %q; want one line naming the hash cache once", stderr)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"p2pcdn":                 "p2pcdn",
		"/usr/local/bin/p2pcdn":  "/usr/local/bin/p2pcdn",
		"/home/me/my dir/p2pcdn": "'/home/me/my dir/p2pcdn'",
		"it's":                   `'it'\''s'`,
		"":                       "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHelpDefaultsTellTheTruth: a flag whose zero value means "no limit"
// does not show as "(default: 0s)", which reads as zero seconds.
func TestHelpDefaultsTellTheTruth(t *testing.T) {
	seedHelp, _, _ := runApp(t, "seed", "--help")
	for _, line := range strings.Split(seedHelp, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--for DURATION ") && !strings.Contains(line, "(default: until interrupted)") {
			t.Errorf("seed --help: %q", line)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type hashVector struct {
	Size     int    `json:"size"`
	FileName string `json:"file_name"`
	JSON     string `json:"info_dictionary_json"`
}

// runApp runs the CLI in-process and returns stdout, stderr and the exit code
// main would use.
func runApp(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &stdout, &stderr
	err := app.RunContext(context.Background(), append([]string{"p2pcdn"}, args...))
	wantJSON, _ := app.Metadata[metaJSON].(bool)
	code := report(&stdout, &stderr, err, wantJSON)
	return stdout.String(), stderr.String(), code
}

func writeVectors(t *testing.T) (dir string, vs []hashVector) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "content", "prototype-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Vectors []hashVector }
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for _, v := range doc.Vectors {
		b := make([]byte, v.Size)
		for i := range b {
			b[i] = byte((i*7 + 3) % 256)
		}
		if err := os.WriteFile(filepath.Join(dir, v.FileName), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, doc.Vectors
}

func TestHashJSONMatchesPrototype(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir, vs := writeVectors(t)
	var args []string
	var want []string
	for _, v := range vs {
		if v.Size > 0 {
			args = append(args, filepath.Join(dir, v.FileName))
			want = append(want, v.JSON)
		}
	}
	for _, run := range []string{"cold cache", "warm cache", "no cache"} {
		a := append([]string{"hash", "--json"}, args...)
		if run == "no cache" {
			a = append([]string{"hash", "--json", "--no-cache"}, args...)
		}
		stdout, stderr, code := runApp(t, a...)
		if code != 0 || stderr != "" {
			t.Fatalf("%s: exit %d, stderr %q", run, code, stderr)
		}
		if got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: stdout\n%s\nwant\n%s", run, stdout, strings.Join(want, "\n"))
		}
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "p2pcdn", "hashes.v1")); err != nil {
		t.Fatalf("hash cache not written: %v", err)
	}
}

func TestHashDirectoryHumanAndFailures(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir, vs := writeVectors(t)
	// A directory: the empty file is skipped with a warning, the rest listed.
	stdout, stderr, code := runApp(t, "hash", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "v0.bin") || !strings.Contains(stderr, "empty file") {
		t.Fatalf("no warning about the empty file: %q", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != len(vs)-1 {
		t.Fatalf("%d lines for %d shareable files:\n%s", len(lines), len(vs)-1, stdout)
	}
	if !strings.HasPrefix(lines[1], "6d232539fcf51dff47c2c137cef3f80027212ee9") || !strings.Contains(lines[1], "976.6 KiB") ||
		!strings.HasSuffix(lines[1], filepath.Join(dir, "v1000000.bin")) {
		t.Fatalf("unexpected line %q (lexical order: v1.bin, v1000000.bin, ...)", lines[1])
	}
	// A named empty file and a missing path fail the command; good files still print.
	stdout, stderr, code = runApp(t, "hash", "--json", filepath.Join(dir, "v0.bin"), filepath.Join(dir, "v1.bin"), filepath.Join(dir, "nope"))
	if code != exitFailure {
		t.Fatalf("exit %d, want %d", code, exitFailure)
	}
	if strings.Count(stdout, "\n") != 1 || !strings.Contains(stdout, `"file_name":"v1.bin"`) {
		t.Fatalf("stdout %q", stdout)
	}
	if !strings.Contains(stderr, "empty file") || !strings.Contains(stderr, "nope: no such file") {
		t.Fatalf("stderr %q", stderr)
	}
	if _, _, code := runApp(t, "hash"); code != exitUsage {
		t.Fatalf("no arguments: exit %d, want %d", code, exitUsage)
	}
}

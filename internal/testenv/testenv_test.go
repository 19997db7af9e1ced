package testenv

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestRepoRoot(t *testing.T) {
	root := RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("RepoRoot %s has no go.mod: %v", root, err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "testenv")); err != nil {
		t.Fatalf("RepoRoot %s is not this repository: %v", root, err)
	}
}

func TestFresh(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "package-lock.json")
	if err := os.WriteFile(lock, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fresh(dir) {
		t.Fatal("fresh without node_modules")
	}
	mods := filepath.Join(dir, "node_modules")
	if err := os.Mkdir(mods, 0o755); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(mods, old, old); err != nil {
		t.Fatal(err)
	}
	if fresh(dir) {
		t.Fatal("fresh with node_modules older than the lock file")
	}
	now := time.Now().Add(time.Hour)
	if err := os.Chtimes(mods, now, now); err != nil {
		t.Fatal(err)
	}
	if !fresh(dir) {
		t.Fatal("not fresh with node_modules newer than the lock file")
	}
}

func TestNode(t *testing.T) {
	if _, err := os.Stat(Node(t)); err != nil {
		t.Fatal(err)
	}
}

func TestStartProc(t *testing.T) {
	p := StartProc(t, "sh", "/bin/sh", "", "-c", `echo out; echo "ready port=42" >&2; exit 3`)
	if m := p.WaitOutput(regexp.MustCompile(`ready port=(\d+)`), time.Minute); m[1] != "42" {
		t.Errorf("WaitOutput submatch = %q, want 42", m[1])
	}
	if code := p.Wait(time.Minute); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if !p.Exited() || p.Err() == nil {
		t.Errorf("after Wait: Exited %v, Err %v", p.Exited(), p.Err())
	}
	if got := p.Stdout(); got != "out\n" {
		t.Errorf("Stdout %q, want %q", got, "out\n")
	}
}

func TestStartProcKill(t *testing.T) {
	p := StartProc(t, "sleeper", "/bin/sh", "", "-c", "exec sleep 600") // exec: no grandchild holding the output pipes open
	if p.Exited() {
		t.Fatal("exited before Kill")
	}
	p.Kill()
	if !p.Exited() {
		t.Fatal("still running after Kill")
	}
}

func TestIsolatedEnv(t *testing.T) {
	t.Setenv("P2PCDN_MEDIATOR", "ws://example.invalid")
	for _, kv := range IsolatedEnv(t) {
		if strings.HasPrefix(kv, "P2PCDN_") {
			t.Errorf("IsolatedEnv keeps %s", kv)
		}
	}
}

func TestBuildBinaryFails(t *testing.T) {
	if _, _, err := BuildBinary("github.com/p2pcdn/p2pcdn/internal/no-such-package"); err == nil {
		t.Fatal("BuildBinary of a missing package succeeded")
	}
}

func TestP2PCDNPrebuilt(t *testing.T) {
	t.Setenv("P2PCDN_E2E_BIN", "/prebuilt/p2pcdn")
	path, cleanup, err := P2PCDN()
	if err != nil || path != "/prebuilt/p2pcdn" {
		t.Fatalf("P2PCDN with P2PCDN_E2E_BIN = %q, %v; want the prebuilt path", path, err)
	}
	cleanup()
}

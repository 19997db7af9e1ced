package testenv

import (
	"os"
	"path/filepath"
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

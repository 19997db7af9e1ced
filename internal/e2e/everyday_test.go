package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/testenv"
)

// getLineRE is the command seed prints under each file.
var getLineRE = regexp.MustCompile(`(?m)^    (.+ get .+ ([0-9a-f]{40}))$`)

// TestSeedPrintsRunnableGetLine: the get line seed prints (human output)
// runs as it is in a shell, from another directory, and fetches the file;
// sizes print in one style.
func TestSeedPrintsRunnableGetLine(t *testing.T) {
	t.Parallel()
	m := startMediator(t, "127.0.0.1:0")
	src := filepath.Join(t.TempDir(), "hello world.txt")
	writeRandom(t, src, 5000, 700)
	s := start(t, "seeder", "", "seed", "--no-cache", "--ice-loopback", "--mediator", m.url(), src)
	s.WaitOutput(seedingRE, startTimeout)
	out := s.Stdout()
	if !strings.Contains(out, "  4.9 KiB  ") {
		t.Errorf("seed printed %q; want the size as 4.9 KiB", out)
	}
	match := getLineRE.FindStringSubmatch(out)
	if match == nil {
		t.Fatalf("seed printed no get line:\n%s", out)
	}
	dir := t.TempDir()
	sh := exec.Command("sh", "-c", match[1])
	sh.Dir = dir
	sh.Env = testenv.IsolatedEnv(t)
	res, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("the printed line %q failed: %v\n%s", match[1], err, res)
	}
	sameFile(t, filepath.Join(dir, "hello world.txt"), src)
	if !strings.Contains(string(res), "4.9 KiB, verified, from 1 peer(s)") {
		t.Errorf("get said %q; want the size as 4.9 KiB", res)
	}
}

// TestErrorsOnce: a failure is one line on stderr, worded for the user with
// the cause last: no log line repeating it, no package prefixes, the
// mediator named once. With --json stdout holds one {"error","code"}.
func TestErrorsOnce(t *testing.T) {
	t.Parallel()
	dead := deadAddr(t)
	hash := "0123456789abcdef0123456789abcdef01234567"
	p := start(t, "get", "", "get", "--json", "--mediator", "ws://"+dead, hash)
	code := p.Wait(runTimeout)
	if code != 1 {
		t.Fatalf("get through a dead mediator exited %d; stderr:\n%s", code, p.Stderr())
	}
	errLines := strings.Split(strings.TrimSpace(p.Stderr()), "\n")
	want := "p2pcdn: cannot connect to the mediator at ws://" + dead + ": connection refused"
	if len(errLines) != 1 || errLines[0] != want {
		t.Errorf("stderr %q; want the one line %q", p.Stderr(), want)
	}
	var obj struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}
	dec := json.NewDecoder(strings.NewReader(p.Stdout()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&obj); err != nil || obj.Code != 1 || !strings.Contains(obj.Error, "connection refused") || dec.More() {
		t.Errorf("stdout %q: want one {\"error\",\"code\":1} (%v)", p.Stdout(), err)
	}

	// A flag the command does not know: one line, exit 2, no help dump.
	p = start(t, "get", "", "get", "--bogus", hash)
	if code := p.Wait(runTimeout); code != 2 || strings.Count(strings.TrimSpace(p.Stderr()), "\n") != 0 ||
		!strings.Contains(p.Stderr(), "bogus") {
		t.Errorf("get --bogus exited %d; stderr:\n%s", code, p.Stderr())
	}
}

// TestGetInterrupted: Ctrl-C during get exits 130 and says the .part was
// kept and a rerun resumes; with --json the failure is an object.
func TestGetInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 64 MiB files; skipped with -short")
	}
	t.Parallel()
	src := filepath.Join(t.TempDir(), "big.bin")
	writeRandom(t, src, 64<<20, 800)
	m := startMediator(t, "127.0.0.1:0")
	s := startSeeder(t, m, nil, src)
	out := t.TempDir()
	g := startGet(t, m, out, s.infos[0].FullHash)
	waitPiecesSaved(t, g, filepath.Join(out, "big.bin"))
	if err := g.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := g.Wait(runTimeout); code != 130 {
		t.Fatalf("interrupted get exited %d, want 130; stderr:\n%s", code, g.Stderr())
	}
	msg := g.Stderr()
	if !strings.Contains(msg, filepath.Join(out, "big.bin.part")) && !strings.Contains(msg, "big.bin.part") ||
		!strings.Contains(msg, "resumes") || strings.Contains(msg, "context canceled") {
		t.Errorf("stderr %q; want it to name the .part kept and say a rerun resumes", msg)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(g.Stdout()), &obj); err != nil || obj["code"] != float64(130) {
		t.Errorf("--json printed %q; want {\"error\",\"code\":130}", g.Stdout())
	}
	if _, err := os.Stat(filepath.Join(out, "big.bin.part")); err != nil {
		t.Fatalf("the .part is gone: %v", err)
	}
}

// TestSeedStopsAndWarns: a path that cannot be seeded is a warning, not the
// end of seed; SIGINT stops a seeder, which says what it does and exits 0.
func TestSeedStopsAndWarns(t *testing.T) {
	t.Parallel()
	m := startMediator(t, "127.0.0.1:0")
	src := filepath.Join(t.TempDir(), "ok.bin")
	writeRandom(t, src, 1000, 900)
	missing := filepath.Join(t.TempDir(), "missing.bin")
	s := startSeeder(t, m, nil, missing, src)
	if len(s.infos) != 1 || !strings.Contains(s.Stderr(), "warning: "+missing+": no such file") {
		t.Fatalf("seed of a missing and a good file served %d; stderr:\n%s", len(s.infos), s.Stderr())
	}
	if err := s.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := s.Wait(runTimeout); code != 0 || !strings.Contains(s.Stderr(), "stopping") {
		t.Fatalf("seed exited %d on SIGINT; stderr:\n%s", code, s.Stderr())
	}
	// Nothing seedable at all is a failure.
	p := start(t, "seed", "", "seed", "--ice-loopback", "--mediator", m.url(), missing)
	if code := p.Wait(runTimeout); code != 1 || !strings.Contains(p.Stderr(), "nothing to seed") {
		t.Fatalf("seed of a missing file exited %d; stderr:\n%s", code, p.Stderr())
	}
}

// TestSeedForExcludesHashing: --for counts from when every file is
// announced, so a --for shorter than the hashing still seeds and exits 0.
func TestSeedForExcludesHashing(t *testing.T) {
	t.Parallel()
	m := startMediator(t, "127.0.0.1:0")
	src := filepath.Join(t.TempDir(), "slow.bin")
	writeRandom(t, src, 100<<20, 1000) // ~0.1 s to hash at best
	s := startSeeder(t, m, []string{"--for", "10ms"}, src)
	if code := s.Wait(runTimeout); code != 0 {
		t.Fatalf("seed --for 10ms exited %d; stderr:\n%s", code, s.Stderr())
	}
	if !strings.Contains(s.Stderr(), "seeding 1 file(s)") || !strings.Contains(s.Stderr(), "for 10ms") {
		t.Fatalf("seed --for did not say it seeded; stderr:\n%s", s.Stderr())
	}
}

// TestMirrorTree: seed --manifest writes the tree's manifest; get
// --manifest fetches every file into its folder in one process (two files
// with the same name do not collide), and a second run finds them all
// already there. Several hashes in one get land in -o.
func TestMirrorTree(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	files := map[string]int64{"index.html": 3000, "a/same.txt": 10, "b/same.txt": 20, "b/c/deep.bin": 450_000}
	n := uint64(1100)
	for rel, size := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(src, rel)), 0o755)
		writeRandom(t, filepath.Join(src, rel), size, n)
		n++
	}
	// The same content at two paths: seeded once, in the manifest twice.
	index, _ := os.ReadFile(filepath.Join(src, "index.html"))
	if err := os.WriteFile(filepath.Join(src, "copy-of-index.html"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	files["copy-of-index.html"] = 3000
	m := startMediator(t, "127.0.0.1:0")
	mf := filepath.Join(t.TempDir(), "site.manifest")
	s := startSeeder(t, m, []string{"--manifest", mf}, src)
	if len(s.infos) != len(files)-1 { // the copy is seeded once
		t.Fatalf("seeding %d files, want %d", len(s.infos), len(files)-1)
	}
	if _, err := os.Stat(mf); err != nil {
		t.Fatalf("no manifest: %v; stderr:\n%s", err, s.Stderr())
	}
	out := filepath.Join(t.TempDir(), "mirror")
	p := start(t, "get", "", "get", "--json", "--ice-loopback", "--mediator", m.url(), "--manifest", mf, "-o", out)
	if code := p.Wait(runTimeout); code != 0 {
		t.Fatalf("get --manifest exited %d; stderr:\n%s", code, p.Stderr())
	}
	for rel := range files {
		sameFile(t, filepath.Join(out, rel), filepath.Join(src, rel))
	}
	if got := strings.Count(p.Stdout(), "\n"); got != len(files)-1 {
		t.Errorf("get --json printed %d objects, want one per file:\n%s", got, p.Stdout())
	}
	p = start(t, "get", "", "get", "--json", "--ice-loopback", "--mediator", m.url(), "--manifest", mf, "-o", out)
	if code := p.Wait(runTimeout); code != 0 || strings.Count(p.Stdout(), `"already_there":true`) != len(files)-1 {
		t.Fatalf("second get --manifest exited %d, printed:\n%s\nstderr:\n%s", code, p.Stdout(), p.Stderr())
	}

	multi := t.TempDir()
	hashes := []string{s.info("copy-of-index.html").FullHash, s.info("deep.bin").FullHash} // index.html is the same content
	g := startGet(t, m, "", append([]string{"-o", multi}, hashes...)...)
	if code := g.Wait(runTimeout); code != 0 || strings.Count(g.Stdout(), "\n") != 2 {
		t.Fatalf("get of two hashes exited %d, printed:\n%s\nstderr:\n%s", code, g.Stdout(), g.Stderr())
	}
	sameFile(t, filepath.Join(multi, "copy-of-index.html"), filepath.Join(src, "index.html"))
	sameFile(t, filepath.Join(multi, "deep.bin"), filepath.Join(src, "b", "c", "deep.bin"))
}

// TestHostileManifest: a manifest that reaches outside the target is
// refused whole with a clear error (exit 2), and nothing is written.
func TestHostileManifest(t *testing.T) {
	t.Parallel()
	m := startMediator(t, "127.0.0.1:0")
	info := `{"full_hash":"f572d396fae9206628714fb2ce00f72e94f2258f","file_name":"a.txt","pieces_length":200000,` +
		`"pieces_amount":1,"total_length":6,"piece_hashes":["f572d396fae9206628714fb2ce00f72e94f2258f"]}`
	root := t.TempDir()
	out := filepath.Join(root, "out")
	for _, path := range []string{"../escape.txt", "/etc/evil", "ok/../../x", `..\\x`} {
		mf := filepath.Join(root, "m")
		body := "{\"p2pcdn_manifest\":1}\n{\"path\":" + jsonString(path) + ",\"info\":" + info + "}\n"
		if err := os.WriteFile(mf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		p := start(t, "get", "", "get", "--ice-loopback", "--mediator", m.url(), "--manifest", mf, "-o", out)
		if code := p.Wait(runTimeout); code != 2 || !strings.Contains(p.Stderr(), "manifest") {
			t.Errorf("manifest path %q: exit %d; stderr:\n%s", path, code, p.Stderr())
		}
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 { // the manifest alone
		t.Fatalf("files appeared: %v", ents)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestSeedWatch: seed --watch picks up a file added, then changed, then
// removed, in a seeded directory: each new content can be fetched, and
// after the removal the old hash finds no peer.
func TestSeedWatch(t *testing.T) {
	t.Parallel()
	m := startMediator(t, "127.0.0.1:0")
	dir := t.TempDir()
	writeRandom(t, filepath.Join(dir, "first.bin"), 1000, 1200)
	s := startSeeder(t, m, []string{"--watch"}, dir)

	hashAt := func(after int) string {
		t.Helper()
		deadline := time.Now().Add(startTimeout)
		for time.Now().Before(deadline) {
			lines := strings.Split(strings.TrimSpace(s.Stdout()), "\n")
			if len(lines) > after {
				var in struct {
					FullHash string `json:"full_hash"`
				}
				if err := json.Unmarshal([]byte(lines[after]), &in); err == nil && in.FullHash != "" {
					return in.FullHash
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("seed --watch printed no file %d; stdout:\n%s\nstderr:\n%s", after+1, s.Stdout(), s.Stderr())
		return ""
	}
	added := filepath.Join(dir, "sub", "added.bin")
	os.MkdirAll(filepath.Dir(added), 0o755)
	writeRandom(t, added, 300_000, 1201)
	h1 := hashAt(1)
	out := t.TempDir()
	if code, _, p := runGet(t, m, out, h1); code != 0 {
		t.Fatalf("get of the added file exited %d; stderr:\n%s", code, p.Stderr())
	}
	sameFile(t, filepath.Join(out, "added.bin"), added)

	writeRandom(t, added, 200_001, 1202)
	h2 := hashAt(2)
	if h2 == h1 {
		t.Fatal("the changed file kept its hash")
	}
	out2 := t.TempDir()
	if code, _, p := runGet(t, m, out2, h2); code != 0 {
		t.Fatalf("get of the changed file exited %d; stderr:\n%s", code, p.Stderr())
	}
	sameFile(t, filepath.Join(out2, "added.bin"), added)

	if err := os.Remove(added); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(s.Stdout(), `"removed"`) {
		if time.Now().After(deadline) {
			t.Fatalf("seed --watch did not report the removal; stdout:\n%s", s.Stdout())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _, p := runGet(t, m, t.TempDir(), "--timeout", "2s", h2); code != 3 {
		t.Fatalf("get of the removed file exited %d, want 3 (no peers); stderr:\n%s", code, p.Stderr())
	}
}

package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGetSizes seeds several files of awkward sizes from one directory and
// fetches each by hash alone, as separate processes.
func TestGetSizes(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	sizes := map[string]int64{
		"one-byte.bin":    1,
		"one-piece.bin":   200000,  // exactly one piece
		"two-pieces.bin":  400000,  // exactly two pieces
		"short-last.bin":  1234567, // 7 pieces, the last one 34567 bytes
		"piece-and-1.bin": 200001,  // a last piece of one byte
		"several.bin":     3 << 20, // 16 pieces
	}
	seed := uint64(1)
	for name, size := range sizes {
		writeRandom(t, filepath.Join(src, name), size, seed)
		seed++
	}
	m := startMediator(t, "127.0.0.1:0")
	s := startSeeder(t, m, nil, src)
	if len(s.infos) != len(sizes) {
		t.Fatalf("seeder serves %d files, want %d", len(s.infos), len(sizes))
	}
	for name, size := range sizes {
		t.Run(name, func(t *testing.T) {
			info := s.info(name)
			out := t.TempDir()
			code, sum, p := runGet(t, m, out, info.FullHash)
			if code != 0 {
				t.Fatalf("get exited %d; stderr:\n%s", code, p.Stderr())
			}
			got := filepath.Join(out, name)
			sameFile(t, got, filepath.Join(src, name))
			if sum.FullHash != info.FullHash || sum.FileName != name || sum.TotalLength != size ||
				sum.Downloaded != size || sum.Resumed != 0 || sum.Peers != 1 || sum.ElapsedMS == nil || *sum.ElapsedMS < 0 {
				t.Fatalf("summary %+v, want hash %s, name %s, %d bytes all downloaded from 1 peer, none resumed",
					*sum, info.FullHash, name, size)
			}
			if sum.Path != name { // relative to the working directory, where it was written
				t.Fatalf("summary path %q, want %q", sum.Path, name)
			}
			leftovers, _ := filepath.Glob(filepath.Join(out, "*.part*"))
			if len(leftovers) != 0 {
				t.Fatalf("download left %v behind", leftovers)
			}
		})
	}
	// -o naming a file path, and -o naming a directory.
	info := s.info("short-last.bin")
	out := t.TempDir()
	target := filepath.Join(out, "renamed.dat")
	if code, sum, p := runGet(t, m, "", "-o", target, info.FullHash); code != 0 || sum.Path != target {
		t.Fatalf("get -o FILE: exit %d, summary %+v; stderr:\n%s", code, sum, p.Stderr())
	}
	sameFile(t, target, filepath.Join(src, "short-last.bin"))
	if code, sum, p := runGet(t, m, "", "-o", out, info.FullHash); code != 0 || sum.Path != filepath.Join(out, "short-last.bin") {
		t.Fatalf("get -o DIR: exit %d, summary %+v; stderr:\n%s", code, sum, p.Stderr())
	}
	// The target holds the file now: a second get verifies it and is done.
	if code, sum, p := runGet(t, m, "", "-o", target, "--timeout", "20s", info.FullHash); code != 0 || !sum.AlreadyThere || sum.Downloaded != 0 {
		t.Fatalf("get of a file already there: exit %d, summary %+v; stderr:\n%s", code, sum, p.Stderr())
	}
	sameFile(t, target, filepath.Join(src, "short-last.bin"))
	// A different file there is never overwritten.
	other := filepath.Join(out, "other.dat")
	if err := os.WriteFile(other, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, p := runGet(t, m, "", "-o", other, "--timeout", "20s", info.FullHash); code == 0 || !strings.Contains(p.Stderr(), "exists") {
		t.Fatalf("get over a different file exited %d; stderr:\n%s", code, p.Stderr())
	}
	if got, _ := os.ReadFile(other); string(got) != "mine" {
		t.Fatalf("the existing file was changed to %d bytes", len(got))
	}
}

// TestSeederKilledMidway kills a seeder with SIGKILL during a download, which
// must complete from a second seeder. The first is frozen once it has sent
// pieces and the second starts then, so both have sent data whatever the
// machine's speed.
func TestSeederKilledMidway(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 64 MiB files; skipped with -short")
	}
	t.Parallel()
	const size = 64 << 20
	src := filepath.Join(t.TempDir(), "big.bin")
	writeRandom(t, src, size, 100)
	m := startMediator(t, "127.0.0.1:0")
	a := startSeeder(t, m, nil, src)
	hash := a.infos[0].FullHash
	out := t.TempDir()
	get := startGet(t, m, out, hash)
	waitPiecesSaved(t, get, filepath.Join(out, "big.bin"))
	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	b := startSeeder(t, m, nil, src)
	if b.infos[0].FullHash != hash {
		t.Fatal("the two seeders disagree on the hash")
	}
	a.Kill()
	if code := get.Wait(runTimeout); code != 0 {
		t.Fatalf("get exited %d after a seeder died; stderr:\n%s", code, get.Stderr())
	}
	sameFile(t, filepath.Join(out, "big.bin"), src)
	sum := parseSummary(t, get)
	if sum.Peers != 2 {
		t.Fatalf("%d peers sent data, want 2 (both seeders): %+v", sum.Peers, *sum)
	}
	if sum.Downloaded < size {
		t.Fatalf("downloaded %d bytes of %d", sum.Downloaded, size)
	}
}

// TestLyingSeeder: a seeder whose file was changed on disk after hashing,
// with its size and modification time restored so it cannot notice, serves
// wrong bytes. Alone it gets banned and the download fails without a file;
// next to an honest seeder the download completes with the right bytes.
func TestLyingSeeder(t *testing.T) {
	t.Parallel()
	const size = 4 << 20
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig", "data.bin")
	liarPath := filepath.Join(dir, "liar", "data.bin")
	for _, d := range []string{filepath.Dir(orig), filepath.Dir(liarPath)} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeRandom(t, orig, size, 7)
	writeRandom(t, liarPath, size, 7)
	m := startMediator(t, "127.0.0.1:0")
	liar := startSeeder(t, m, nil, liarPath)
	corruptKeepingStat(t, liarPath)
	hash := liar.infos[0].FullHash

	out := t.TempDir()
	code, _, p := runGet(t, m, out, "--timeout", "3s", hash)
	if code == 0 {
		t.Fatal("get succeeded from a seeder serving wrong bytes")
	}
	if code != 4 { // "verification failed", distinct from no peers (3)
		t.Errorf("get exited %d with only a lying seeder, want 4 (verification failed); stderr:\n%s", code, p.Stderr())
	}
	if !strings.Contains(p.Stderr(), "banning peer") {
		t.Errorf("the lying seeder was not banned; stderr:\n%s", p.Stderr())
	}
	if _, err := os.Stat(filepath.Join(out, "data.bin")); err == nil {
		t.Fatal("a failed download left a file in place")
	}

	honest := startSeeder(t, m, nil, orig)
	if honest.infos[0].FullHash != hash {
		t.Fatal("honest and lying seeder disagree on the hash")
	}
	code, sum, p := runGet(t, m, out, hash)
	if code != 0 {
		t.Fatalf("get exited %d with an honest seeder present; stderr:\n%s", code, p.Stderr())
	}
	sameFile(t, filepath.Join(out, "data.bin"), orig)
	if sum.Peers < 1 {
		t.Fatalf("summary %+v", *sum)
	}
}

// corruptKeepingStat flips every byte of path in place, then restores its
// modification time, so size and time look unchanged.
func corruptKeepingStat(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] ^= 0xff
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// TestLeecherKilledAndResumed kills `get` with SIGKILL once some pieces are
// saved; a second `get` resumes instead of fetching those pieces again.
func TestLeecherKilledAndResumed(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 64 MiB files; skipped with -short")
	}
	t.Parallel()
	const size = 64 << 20
	src := filepath.Join(t.TempDir(), "resume.bin")
	writeRandom(t, src, size, 200)
	m := startMediator(t, "127.0.0.1:0")
	s := startSeeder(t, m, nil, src)
	hash := s.infos[0].FullHash
	out := t.TempDir()
	final := filepath.Join(out, "resume.bin")

	first := startGet(t, m, out, hash)
	waitPiecesSaved(t, first, final)
	first.Kill()
	if _, err := os.Stat(final + ".part"); err != nil {
		t.Fatalf("no .part after the kill: %v", err)
	}

	code, sum, p := runGet(t, m, out, hash)
	if code != 0 {
		t.Fatalf("resumed get exited %d; stderr:\n%s", code, p.Stderr())
	}
	sameFile(t, final, src)
	if sum.Resumed <= 0 || sum.TotalLength != size {
		t.Fatalf("summary %+v: want resumed > 0 of %d", *sum, size)
	}
	// Every byte is accounted for: resumed pieces were not fetched again
	// (a piece may be fetched twice only if it arrived in several runs, or
	// if it is piece 0, which a get by hash asks a seeder of ours for before
	// it knows what it has: internal/swarm/firstpiece.go).
	if sum.Downloaded > size-sum.Resumed+200000 {
		t.Fatalf("downloaded %d bytes although %d were resumed of %d", sum.Downloaded, sum.Resumed, size)
	}
	// Pieces are 200,000 bytes but the last is shorter; it may be among
	// the resumed ones.
	const last = size % 200000
	whole := int64(sum.ResumedPieces) * 200000
	if sum.Resumed != whole && sum.Resumed != whole-200000+last {
		t.Fatalf("resumed %d bytes in %d pieces: want the pieces' bytes", sum.Resumed, sum.ResumedPieces)
	}
	for _, leftover := range []string{final + ".part", final + ".part.state"} {
		if _, err := os.Stat(leftover); err == nil {
			t.Fatalf("%s left behind", leftover)
		}
	}
}

// TestMediatorRestart kills the mediator while a file is seeded and starts a
// new one on the same address: the seeder reconnects and announces again, so
// a later get succeeds.
func TestMediatorRestart(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "restart.bin")
	writeRandom(t, src, 500000, 300)
	m := startMediator(t, "127.0.0.1:0")
	s := startSeeder(t, m, nil, src)
	hash := s.infos[0].FullHash

	m.Kill()
	// The port was free a moment ago; something else may grab it in
	// between, rarely, so retry a little.
	var m2 *mediator
	for try := 1; m2 == nil; try++ {
		p := start(t, "mediator (restarted)", "", "mediator", "--listen", m.addr, "--dht-listen", "127.0.0.1:0")
		switch {
		case waitListeningOrExit(p):
			m2 = &mediator{proc: p, addr: m.addr}
		case try == 20:
			t.Fatalf("could not restart the mediator on %s; stderr:\n%s", m.addr, p.Stderr())
		default:
			time.Sleep(100 * time.Millisecond)
		}
	}
	out := t.TempDir()
	code, sum, p := runGet(t, m2, out, "--timeout", "60s", hash)
	if code != 0 {
		t.Fatalf("get after the mediator restart exited %d; stderr:\n%s\nseeder stderr:\n%s", code, p.Stderr(), s.Stderr())
	}
	sameFile(t, filepath.Join(out, "restart.bin"), src)
	if sum.Peers != 1 {
		t.Fatalf("summary %+v", *sum)
	}
	if s.Exited() {
		t.Fatalf("seeder exited when its mediator went away: %v", s.Err())
	}
}

// waitListeningOrExit reports whether p started listening (true) or exited (false).
func waitListeningOrExit(p *proc) bool {
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if listeningRE.MatchString(p.Stderr()) {
			return true
		}
		if p.Exited() {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestHostileFileName gives get an info dictionary (--info) whose file name
// tries to escape the target directory: the file must land inside it.
func TestHostileFileName(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "plain.bin")
	writeRandom(t, src, 300000, 400)
	m := startMediator(t, "127.0.0.1:0")
	s := startSeeder(t, m, nil, src)
	info := s.infos[0]

	outside := filepath.Join(t.TempDir(), "escaped")
	names := []string{
		"../../evil",
		"../../../../../../../../" + outside,
		outside, // absolute
		`..\..\evil`,
		"..",
		"",
		".hidden",
		"a/../../b",
		"evil\x00.bin",
		"new\nline\x1b[31m.bin",
		strings.Repeat("x", 5000) + ".bin",
	}
	for i, name := range names {
		for _, useCwd := range []bool{false, true} {
			root := t.TempDir()
			target := filepath.Join(root, "a", "b", "out")
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			hostile := info.Clone()
			hostile.FileName = name
			js, err := hostile.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			infoFile := filepath.Join(root, "info.json")
			if err := os.WriteFile(infoFile, js, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"--info", infoFile, info.FullHash}
			dir := ""
			if useCwd {
				dir = target
			} else {
				args = append([]string{"-o", target}, args...)
			}
			code, sum, p := runGet(t, m, dir, args...)
			if code != 0 {
				t.Fatalf("name %d %q (cwd %v): get exited %d; stderr:\n%s", i, name, useCwd, code, p.Stderr())
			}
			entries, err := os.ReadDir(target)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || !entries[0].Type().IsRegular() {
				t.Fatalf("name %q: target directory holds %v, want one file", name, entries)
			}
			got := entries[0].Name()
			if got == "." || got == ".." || strings.HasPrefix(got, ".") || strings.ContainsAny(got, "/\\\x00\n\x1b") || len(got) > 255 {
				t.Fatalf("name %q was written as %q", name, got)
			}
			sameFile(t, filepath.Join(target, got), src)
			if filepath.Base(sum.Path) != got {
				t.Fatalf("summary path %q, but the file is %q", sum.Path, got)
			}
			// Nothing else anywhere under root, nor at the absolute name.
			filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && path != infoFile && path != filepath.Join(target, got) {
					t.Errorf("name %q: unexpected file %s", name, path)
				}
				return nil
			})
			if _, err := os.Lstat(outside); err == nil {
				t.Fatalf("name %q: a file was written outside the target at %s", name, outside)
			}
		}
	}
}

// TestGetExitCodes: no peers within --timeout is exit 3, also for a hash
// given in upper case (normalized); a malformed hash or mediator address is
// exit 2; an --info for another hash is exit 4.
func TestGetExitCodes(t *testing.T) {
	t.Parallel()
	m := startMediator(t, "127.0.0.1:0")
	unknown := "0123456789abcdef0123456789abcdef01234567"
	code, _, p := runGet(t, m, "", "--timeout", "2s", unknown)
	if code != 3 {
		t.Fatalf("get of an unseeded hash exited %d, want 3; stderr:\n%s", code, p.Stderr())
	}
	if !strings.Contains(p.Stderr(), "no peers") {
		t.Errorf("stderr does not say why: %q", p.Stderr())
	}
	code, _, p = runGet(t, m, "", "--timeout", "1s", strings.ToUpper(unknown))
	if code != 3 || !strings.Contains(p.Stderr(), unknown) {
		t.Fatalf("get of an upper-case hash exited %d, want 3 naming %s in lower case; stderr:\n%s", code, unknown, p.Stderr())
	}
	for _, bad := range []string{"", "xyz", unknown[:39], unknown + "0", "../" + unknown[3:]} {
		code, _, p := runGet(t, m, "", bad)
		if code != 2 {
			t.Errorf("get %q exited %d, want 2; stderr:\n%s", bad, code, p.Stderr())
		}
	}
	if code, _, p := runGet(t, m, ""); code != 2 {
		t.Errorf("get without a hash exited %d, want 2; stderr:\n%s", code, p.Stderr())
	}
	for _, bad := range []string{"ht!tp://x", "ftp://host:1", "ws://"} {
		p := start(t, "get", "", "get", "--mediator", bad, unknown)
		if code := p.Wait(runTimeout); code != 2 || !strings.Contains(p.Stderr(), "bad mediator address") {
			t.Errorf("get --mediator %q exited %d, want 2 and a clear error; stderr:\n%s", bad, code, p.Stderr())
		}
	}
	// A mediator nobody listens on: a clear failure, not a hang.
	dead := &mediator{addr: deadAddr(t)}
	if code, _, p := runGet(t, dead, "", "--timeout", "2s", unknown); code == 0 {
		t.Errorf("get through a dead mediator exited 0; stderr:\n%s", p.Stderr())
	}
}

// deadAddr returns a loopback address where nothing listens (as far as we
// can tell: the port was just free).
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestSeedLifetime: `seed --for` exits 0 by itself; seeding only an empty
// file fails with a clear message.
func TestSeedLifetime(t *testing.T) {
	t.Parallel()
	m := startMediator(t, "127.0.0.1:0")
	dir := t.TempDir()
	src := filepath.Join(dir, "f.bin")
	writeRandom(t, src, 1000, 500)
	s := startSeeder(t, m, []string{"--for", "2s"}, src)
	if code := s.Wait(runTimeout); code != 0 {
		t.Fatalf("seed --for 2s exited %d; stderr:\n%s", code, s.Stderr())
	}

	// A named empty file, and a directory holding only an empty file.
	empty := filepath.Join(dir, "empty.bin")
	emptyDir := filepath.Join(dir, "empty-only")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(emptyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(emptyDir, "zero"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{empty, emptyDir} {
		p := start(t, "seed", "", "seed", "--no-cache", "--ice-loopback", "--mediator", m.url(), path)
		if code := p.Wait(runTimeout); code == 0 {
			t.Fatalf("seed of %s exited 0", path)
		}
		if msg := p.Stderr(); !strings.Contains(msg, "empty file") || !strings.Contains(msg, "cannot be shared") {
			t.Fatalf("seed of %s: unclear error %q", path, msg)
		}
	}
	// SIGTERM ends a seeder cleanly too.
	s2 := startSeeder(t, m, nil, src)
	if err := s2.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s2.Wait(runTimeout); code != 0 {
		t.Fatalf("seed exited %d on SIGTERM; stderr:\n%s", code, s2.Stderr())
	}
}

// TestLeechersShare runs two downloads of one file at once from a single
// seeder: both complete, and at least one fetches pieces from the other,
// which re-shares while it downloads. (The file is big enough for the two
// to find each other through get_peers, asked once a second.)
func TestLeechersShare(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 64 MiB files; skipped with -short")
	}
	t.Parallel()
	const size = 64 << 20
	src := filepath.Join(t.TempDir(), "shared.bin")
	writeRandom(t, src, size, 600)
	m := startMediator(t, "127.0.0.1:0")
	s := startSeeder(t, m, nil, src)
	hash := s.infos[0].FullHash
	outs := []string{t.TempDir(), t.TempDir()}
	gets := []*proc{startGet(t, m, outs[0], hash), startGet(t, m, outs[1], hash)}
	peers := 0
	for i, g := range gets {
		if code := g.Wait(runTimeout); code != 0 {
			t.Fatalf("get %d exited %d; stderr:\n%s", i, code, g.Stderr())
		}
		sameFile(t, filepath.Join(outs[i], "shared.bin"), src)
		peers = max(peers, parseSummary(t, g).Peers)
	}
	if peers < 2 {
		t.Fatalf("neither download received data from the other (most peers: %d)", peers)
	}
}

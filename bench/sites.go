package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// siteTree writes n small files (1–2 KB, incompressible) in folders of
// 1,000, as a website's asset tree.
func siteTree(dir string, n int) error {
	src := rand.NewChaCha8([32]byte{7})
	buf := make([]byte, 2048)
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("d%03d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return err
			}
		}
		size := 1024 + i%1024
		src.Read(buf[:size])
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%06d.bin", i)), buf[:size], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// seedingRE is the line seed prints once every file is announced.
var seedingRE = regexp.MustCompile(`^seeding (\d+) file\(s\)`)

// seedScale is one `p2pcdn seed` of a whole tree.
type seedScale struct {
	ready     time.Duration // start → every file announced
	tail      time.Duration // last file printed (hashed) → every file announced
	rss       int64         // peak RSS once seeding (VmHWM), bytes
	fds       int           // open descriptors once seeding
	announced int
}

// seedTree runs seed on dir (a cold hash cache, as a first run) until it
// says every file is announced, samples it, and stops it.
func (b *bench) seedTree(ctx context.Context, mediator, dir string) (seedScale, error) {
	var s seedScale
	cache := filepath.Join(b.work, "cache-"+filepath.Base(dir))
	os.RemoveAll(cache)
	defer os.RemoveAll(cache)
	cmd := exec.Command(b.bin, "seed", "--ice-loopback", "--mediator", mediator, dir)
	cmd.Env = append(b.env, "XDG_CACHE_HOME="+cache)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return s, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return s, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return s, err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	var (
		mu       sync.Mutex
		lastFile time.Time
		wg       sync.WaitGroup
	)
	wg.Go(func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if seedLine.MatchString(sc.Text()) {
				mu.Lock()
				lastFile = time.Now()
				mu.Unlock()
			}
		}
	})
	ready := make(chan int, 1)
	errTail := &limited{n: 8 << 10}
	wg.Go(func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			errTail.Write([]byte(sc.Text() + "\n"))
			if m := seedingRE.FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.Atoi(m[1])
				ready <- n
			}
		}
		close(ready)
	})
	select {
	case n, ok := <-ready:
		if !ok {
			return s, fmt.Errorf("seed exited before seeding: %s", lastLine(errTail.String()))
		}
		s.ready = time.Since(t0)
		s.announced = n
	case <-time.After(10 * time.Minute):
		return s, errors.New("seed not seeding after 10 minutes")
	case <-ctx.Done():
		return s, ctx.Err()
	}
	mu.Lock()
	s.tail = time.Since(lastFile)
	mu.Unlock()
	s.rss = procHWM(cmd.Process.Pid)
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)); err == nil {
		s.fds = len(ents)
	}
	return s, nil
}

// procHWM is a process's peak resident set so far, in bytes.
func procHWM(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// sitesRows measure seeding a whole asset tree and fetching many files in
// one get.
func (b *bench) sitesRows(ctx context.Context) ([]row, error) {
	const title = "Sites (many files)"
	med, _, err := b.startMediator(ctx)
	if err != nil {
		return nil, err
	}
	n := b.sz.siteFiles
	tree := filepath.Join(b.work, "site")
	b.log.Info("writing the asset tree", "files", n)
	if err := siteTree(tree, n); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tree)
	one := filepath.Join(b.work, "site-one")
	if err := siteTree(one, 1); err != nil {
		return nil, err
	}
	defer os.RemoveAll(one)

	nameN := fmt.Sprintf("%s files", thousands(n))
	var readyS, hashS, tailS, rss, rss1, fds, fds1 []float64
	for i := range b.sz.siteRuns {
		b.log.Info("seeding the tree", "run", i+1, "files", n)
		h, err := b.runTimed(ctx, b.bin, "hash", "--no-cache", tree)
		if err != nil {
			return nil, err
		}
		hashS = append(hashS, h.wall.Seconds())
		s, err := b.seedTree(ctx, med, tree)
		if err != nil {
			return nil, err
		}
		if s.announced != n {
			return nil, fmt.Errorf("seed announced %d files of %d", s.announced, n)
		}
		readyS = append(readyS, s.ready.Seconds())
		tailS = append(tailS, s.tail.Seconds())
		rss = append(rss, float64(s.rss)/(1<<20))
		fds = append(fds, float64(s.fds))
		s1, err := b.seedTree(ctx, med, one)
		if err != nil {
			return nil, err
		}
		rss1 = append(rss1, float64(s1.rss)/(1<<20))
		fds1 = append(fds1, float64(s1.fds))
	}
	rows := []row{
		{group: title, name: "`seed` of " + nameN + " (1–2 KB, cold hash cache): start → every file announced",
			unit: unitS, got: readyS, baseName: "`hash --no-cache` of the same tree (whole process)", base: hashS},
		{group: title, name: "the same seed: last file hashed → every file announced (target: under 10 s)",
			unit: unitS, got: tailS, baseName: "the hashing of that tree alone", base: hashS},
		{group: title, name: "peak RSS of that seed, " + nameN + " announced (target: under 150 MB)",
			unit: unitMiB, got: rss, baseName: "`seed` of one file", base: rss1},
		{group: title, name: "open descriptors of that seed, " + nameN + " idle",
			unit: unitCount, got: fds, baseName: "`seed` of one file", base: fds1},
	}

	getRow, err := b.manyGets(ctx, med)
	if err != nil {
		return rows, err
	}
	return append(rows, getRow...), nil
}

// manyGets fetches many small files with one `get` and with one process per
// file (run as many at once as get's --parallel).
func (b *bench) manyGets(ctx context.Context, med string) ([]row, error) {
	const title = "Sites (many files)"
	n := b.sz.manyGets
	dir := filepath.Join(b.work, "many")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for i := range n {
		if _, err := b.makeFile(dir, fmt.Sprintf("asset-%03d.bin", i), 20_000+int64(i)*1000, uint64(5000+i)); err != nil {
			return nil, err
		}
	}
	_, hashes, err := b.startSeed(ctx, med, dir, n)
	if err != nil {
		return nil, err
	}
	var list []string
	for _, h := range hashes {
		list = append(list, h)
	}
	const parallel = 8
	var one, many []float64
	for i := range b.sz.bigRuns {
		b.log.Info("many files in one get vs one get each", "run", i+1, "files", n)
		out, err := os.MkdirTemp(b.work, "many-one-")
		if err != nil {
			return nil, err
		}
		args := append([]string{"get", "--ice-loopback", "--mediator", med, "--timeout", "2m", "-o", out,
			"--parallel", strconv.Itoa(parallel)}, list...)
		r, err := b.runTimed(ctx, b.bin, args...)
		os.RemoveAll(out)
		if err != nil {
			return nil, err
		}
		one = append(one, r.wall.Seconds())

		t0 := time.Now()
		sem := make(chan struct{}, parallel)
		var wg sync.WaitGroup
		var firstErr error
		var mu sync.Mutex
		for _, h := range list {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if _, _, err := b.get(ctx, med, h); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if firstErr != nil {
			return nil, firstErr
		}
		many = append(many, time.Since(t0).Seconds())
	}
	return []row{{group: title,
		name: fmt.Sprintf("`get` of %d files (20–%d KB) from one seeder in one process (--parallel %d)", n, 20+n-1, parallel),
		unit: unitS, got: one,
		baseName: fmt.Sprintf("%d `get` processes, one per file, %d at a time", n, parallel), base: many}}, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// thousands writes n with thousands separators.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

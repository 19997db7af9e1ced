// Command transfer-bench measures native transfers with whole p2pcdn
// processes on loopback, each figure next to a baseline measured in the same
// run:
//
//	latency     `p2pcdn get` of a 1 MB file from one seeder through one
//	            mediator (median of -runs whole processes), against a
//	            whole-process `curl` of the same file from a local net/http
//	            server and against process start-up (`p2pcdn --help`)
//	throughput  `p2pcdn get` of a -big file from one seeder, against raw
//	            pion: two peer connections in this process pushing the same
//	            bytes through one data channel
//	swarm       `p2pcdn get` of the -big file from four seeders at once,
//	            against the single seeder
//	rss         peak RSS of `get` on a -rss-get file and of `seed` on a
//	            -rss-seed directory (four files, hashed without cache, then
//	            serving that get), against `get` and `seed` of the 1 MB file
//
// Everything runs on 127.0.0.1; files live in a temporary directory that is
// removed at the end. See README.md for the command.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == rawReceiverArg {
		if err := rawReceiver(os.Args[2:]); err != nil {
			log.Fatalf("transfer-bench raw receiver: %v", err)
		}
		return
	}
	var (
		bin       = flag.String("bin", "", "p2pcdn binary (build it with: go build -o /tmp/p2pcdn ./cmd/p2pcdn)")
		runs      = flag.Int("runs", 21, "whole-process runs per latency figure (median)")
		bigRuns   = flag.Int("big-runs", 3, "runs per throughput figure (median)")
		big       = flag.Int64("big", 256<<20, "bytes of the throughput file")
		rssGet    = flag.Int64("rss-get", 1<<30, "bytes of the file fetched for the get RSS figure")
		rssSeed   = flag.Int64("rss-seed", 4<<30, "bytes of the directory seeded for the seed RSS figure (four files)")
		scenarios = flag.String("scenarios", "latency,throughput,swarm,rss", "comma-separated scenarios to run")
		tmp       = flag.String("dir", os.TempDir(), "where to create the temporary files")
	)
	flag.Parse()
	log.SetFlags(0)
	if *bin == "" {
		log.Fatal("transfer-bench: -bin is required")
	}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		log.Fatal(err)
	}
	work, err := os.MkdirTemp(*tmp, "p2pcdn-transfer-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	b := &bench{bin: abs, work: work}
	defer b.stopAll()

	ctx, stop := signalContext()
	defer stop()
	want := map[string]bool{}
	for _, s := range strings.Split(*scenarios, ",") {
		want[strings.TrimSpace(s)] = true
	}
	if err := b.run(ctx, want, *runs, *bigRuns, *big, *rssGet, *rssSeed); err != nil {
		b.stopAll()
		os.RemoveAll(work)
		log.Fatalf("transfer-bench: %v", err)
	}
}

func (b *bench) run(ctx context.Context, want map[string]bool, runs, bigRuns int, big, rssGet, rssSeed int64) error {
	med, err := b.startMediator(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("mediator on %s\n", med)
	var small *sample // get of the 1 MB file, the RSS baseline
	var smallSeed *sample
	if want["latency"] || want["rss"] {
		small, smallSeed, err = b.latency(ctx, med, runs, want["latency"])
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	if want["throughput"] || want["swarm"] {
		if err := b.throughput(ctx, med, big, bigRuns, want["swarm"]); err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
	}
	if want["rss"] {
		if err := b.rss(ctx, med, rssGet, rssSeed, small, smallSeed); err != nil {
			return fmt.Errorf("rss: %w", err)
		}
	}
	return nil
}

// bench owns the temporary directory and every long-running child.
type bench struct {
	bin  string
	work string

	mu       sync.Mutex
	children []*exec.Cmd
}

// sample is one finished whole-process run.
type sample struct {
	wall   time.Duration
	maxRSS int64 // bytes
	stdout string
}

// runOnce runs a command to completion and measures it.
func (b *bench) runOnce(ctx context.Context, name string, args ...string) (*sample, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = benchEnv(b.work)
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return &sample{wall: wall, maxRSS: maxRSS(cmd), stdout: stdout.String()}, nil
}

// maxRSS is the child's peak resident set size in bytes (Linux reports KiB).
func maxRSS(cmd *exec.Cmd) int64 {
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss * 1024
	}
	return 0
}

// benchEnv keeps the user's hash cache and p2pcdn settings out of the runs.
func benchEnv(work string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "P2PCDN_") && !strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			out = append(out, kv)
		}
	}
	return append(out, "XDG_CACHE_HOME="+filepath.Join(work, "cache"))
}

// startChild starts a long-running p2pcdn and returns once its stderr
// matches ready; the submatches are returned.
func (b *bench) startChild(ctx context.Context, ready *regexp.Regexp, args ...string) (*exec.Cmd, []string, error) {
	cmd := exec.Command(b.bin, args...)
	cmd.Env = benchEnv(b.work)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	b.mu.Lock()
	b.children = append(b.children, cmd)
	b.mu.Unlock()
	found := make(chan []string, 1)
	var seen strings.Builder
	go func() { // ends when the child closes stderr (it exits)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m:
				default:
				}
			} else if seen.Len() < 4096 {
				seen.WriteString(sc.Text() + "\n")
			}
		}
		close(found)
	}()
	select {
	case m, ok := <-found:
		if !ok {
			return nil, nil, fmt.Errorf("p2pcdn %s exited before it was ready", strings.Join(args, " "))
		}
		return cmd, m, nil
	case <-time.After(10 * time.Minute):
		return nil, nil, fmt.Errorf("p2pcdn %s not ready after 10 minutes", strings.Join(args, " "))
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// stopChild ends a child with SIGTERM (a clean exit, so its rusage is
// complete) and returns its peak RSS.
func stopChild(cmd *exec.Cmd) int64 {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	return maxRSS(cmd)
}

func (b *bench) stopAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.children {
		if c.ProcessState == nil {
			stopChild(c)
		}
	}
	b.children = nil
}

var listeningRE = regexp.MustCompile(`mediator listening.* addr=(\S+)`)

func (b *bench) startMediator(ctx context.Context) (string, error) {
	_, m, err := b.startChild(ctx, listeningRE, "mediator", "--listen", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	return m[1], nil
}

var seedingRE = regexp.MustCompile(`seeding \d+ file\(s\)`)

// startSeeder seeds paths and returns the process and the first file's hash.
func (b *bench) startSeeder(ctx context.Context, med string, paths ...string) (*exec.Cmd, error) {
	args := append([]string{"seed", "--no-cache", "--ice-loopback", "--mediator", med}, paths...)
	cmd, _, err := b.startChild(ctx, seedingRE, args...)
	return cmd, err
}

// hashOf runs `p2pcdn hash` on path.
func (b *bench) hashOf(ctx context.Context, path string) (string, error) {
	s, err := b.runOnce(ctx, b.bin, "hash", "--no-cache", path)
	if err != nil {
		return "", err
	}
	h, _, _ := strings.Cut(s.stdout, " ")
	return h, nil
}

// get runs one whole `p2pcdn get` into a fresh directory and removes the file.
func (b *bench) get(ctx context.Context, med, hash string) (*sample, error) {
	out, err := os.MkdirTemp(b.work, "out-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	return b.runOnce(ctx, b.bin, "get", "--ice-loopback", "--mediator", med, "-o", out+"/", hash)
}

func (b *bench) latency(ctx context.Context, med string, runs int, report bool) (getSample, seedSample *sample, err error) {
	const size = 1_000_000
	dir := filepath.Join(b.work, "latency")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, "1mb.bin")
	if err := writeRandom(path, size, 1); err != nil {
		return nil, nil, err
	}
	hash, err := b.hashOf(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	seeder, err := b.startSeeder(ctx, med, path)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		rss := stopChild(seeder)
		seedSample = &sample{maxRSS: rss}
	}()

	// Baseline server: plain net/http serving the same file.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(ln) // ends with Close below
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/1mb.bin"

	var p2p, curl, help []time.Duration
	var rss []int64
	curlPath, curlErr := exec.LookPath("curl")
	for i := range runs {
		// Interleave the three so load changes hit all of them alike.
		s, err := b.get(ctx, med, hash)
		if err != nil {
			return nil, nil, err
		}
		p2p = append(p2p, s.wall)
		rss = append(rss, s.maxRSS)
		if i == 0 {
			getSample = s
		}
		if curlErr == nil {
			out := filepath.Join(b.work, "curl.out")
			s, err := b.runOnce(ctx, curlPath, "-sSf", "-o", out, url)
			if err != nil {
				return nil, nil, err
			}
			curl = append(curl, s.wall)
			os.Remove(out)
		}
		s, err = b.runOnce(ctx, b.bin, "--help")
		if err != nil {
			return nil, nil, err
		}
		help = append(help, s.wall)
	}
	getSample.maxRSS = median(rss)
	if !report {
		return getSample, nil, nil
	}
	fmt.Printf("\nlatency: whole process, 1 MB file, median of %d runs\n", runs)
	fmt.Printf("  p2pcdn get (mediator + 1 seeder) %8.1f ms\n", ms(median(p2p)))
	if curlErr == nil {
		fmt.Printf("  curl from net/http               %8.1f ms   get/curl = %.1fx\n", ms(median(curl)), ratio(median(p2p), median(curl)))
	} else {
		fmt.Printf("  curl not found: %v\n", curlErr)
	}
	fmt.Printf("  p2pcdn --help (start-up)         %8.1f ms   get/help = %.1fx\n", ms(median(help)), ratio(median(p2p), median(help)))
	return getSample, nil, nil
}

func (b *bench) throughput(ctx context.Context, med string, size int64, runs int, swarm bool) error {
	path := filepath.Join(b.work, "big.bin")
	if err := writeRandom(path, size, 2); err != nil {
		return err
	}
	defer os.Remove(path)
	hash, err := b.hashOf(ctx, path)
	if err != nil {
		return err
	}
	var raw, rawBuf, one, four []time.Duration
	measure := func(n int) ([]time.Duration, error) {
		var seeders []*exec.Cmd
		defer func() {
			for _, s := range seeders {
				stopChild(s)
			}
		}()
		for range n {
			s, err := b.startSeeder(ctx, med, path)
			if err != nil {
				return nil, err
			}
			seeders = append(seeders, s)
		}
		var d []time.Duration
		for range runs {
			s, err := b.get(ctx, med, hash)
			if err != nil {
				return nil, err
			}
			d = append(d, s.wall)
		}
		return d, nil
	}
	for range runs {
		d, err := rawPion(ctx, size, 0)
		if err != nil {
			return fmt.Errorf("raw pion: %w", err)
		}
		raw = append(raw, d)
		if d, err = rawPion(ctx, size, rawSocketBuffer); err != nil {
			return fmt.Errorf("raw pion: %w", err)
		}
		rawBuf = append(rawBuf, d)
	}
	if one, err = measure(1); err != nil {
		return err
	}
	mbps := func(d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }
	fmt.Printf("\nthroughput: %d MiB file, median of %d runs\n", size>>20, runs)
	fmt.Printf("  raw pion, 2 procs, OS socket bufs  %7.1f MB/s\n", mbps(median(raw)))
	fmt.Printf("  raw pion, 2 procs, 4 MiB sock bufs %7.1f MB/s\n", mbps(median(rawBuf)))
	fmt.Printf("  p2pcdn get, 1 seeder (whole proc.) %7.1f MB/s   get/raw = %.2f, get/raw 4 MiB = %.2f\n",
		mbps(median(one)), mbps(median(one))/mbps(median(raw)), mbps(median(one))/mbps(median(rawBuf)))
	if swarm {
		if four, err = measure(4); err != nil {
			return err
		}
		fmt.Printf("  p2pcdn get, 4 seeders              %7.1f MB/s   4 seeders/1 seeder = %.2f\n",
			mbps(median(four)), mbps(median(four))/mbps(median(one)))
	}
	return nil
}

func (b *bench) rss(ctx context.Context, med string, getSize, seedSize int64, small, smallSeed *sample) error {
	dir := filepath.Join(b.work, "rss")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Four files make the directory; the first has the get's size.
	sizes := []int64{getSize, (seedSize - getSize) / 3, (seedSize - getSize) / 3, seedSize - getSize - 2*((seedSize-getSize)/3)}
	for i, n := range sizes {
		if err := writeRandom(filepath.Join(dir, fmt.Sprintf("f%d.bin", i)), n, uint64(10+i)); err != nil {
			return err
		}
	}
	hash, err := b.hashOf(ctx, filepath.Join(dir, "f0.bin"))
	if err != nil {
		return err
	}
	seeder, err := b.startSeeder(ctx, med, dir)
	if err != nil {
		return err
	}
	g, err := b.get(ctx, med, hash)
	seedRSS := stopChild(seeder)
	if err != nil {
		return err
	}
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	fmt.Printf("\npeak RSS (getrusage of the child)\n")
	fmt.Printf("  get of %5d MiB   %7.1f MiB   vs get of 1 MB  %6.1f MiB  = %.2fx\n",
		getSize>>20, mib(g.maxRSS), mib(small.maxRSS), float64(g.maxRSS)/float64(small.maxRSS))
	fmt.Printf("  seed of %4d MiB dir (hash + serve the get) %7.1f MiB   vs seed of 1 MB %6.1f MiB = %.2fx\n",
		seedSize>>20, mib(seedRSS), mib(smallSeed.maxRSS), float64(seedRSS)/float64(smallSeed.maxRSS))
	fmt.Printf("  (get of %d MiB took %.1f s)\n", getSize>>20, g.wall.Seconds())
	return nil
}

// writeRandom writes size pseudo-random bytes to path without holding them.
func writeRandom(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var key [32]byte
	key[0] = byte(seed)
	if _, err := io.CopyN(f, rand.NewChaCha8(key), size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func median[T int64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// signalContext ends on SIGINT or SIGTERM, so children are stopped and the
// temporary files removed.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

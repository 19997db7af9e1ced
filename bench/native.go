package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// seedLine is how `p2pcdn seed` names a file it serves: "HASH  SIZE  PATH",
// SIZE as "976.6 KiB" (or a bare byte count, as older versions print it).
var seedLine = regexp.MustCompile(`^([0-9a-f]{40})\s+(\d+(?:\.\d+)?(?: [KMGTP]iB| B)?)\s+(.+)$`)

// startMediator runs `p2pcdn mediator` on a free loopback port. A port
// taken by someone else between the probe and the bind makes it try again.
func (b *bench) startMediator(ctx context.Context, extra ...string) (string, *daemon, error) {
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return "", nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		args := append([]string{"mediator", "--listen", addr}, extra...)
		if b.hasFederation(ctx) && !contains(extra, "--dht-listen") {
			// The DHT would take the same port over UDP, which a busy
			// machine may have given away; any free one will do.
			args = append(args, "--dht-listen", "127.0.0.1:0")
		}
		d, _, err := b.startDaemon(ctx, nil, b.bin, args...)
		if err != nil {
			return "", nil, err
		}
		if lastErr = waitListening(ctx, addr, d.waited); lastErr == nil {
			return "ws://" + addr, d, nil
		}
		d.stop()
		lastErr = fmt.Errorf("mediator: %w: %s", lastErr, lastLine(d.stderr.String()))
		b.log.Warn("mediator did not start; trying another port", "err", lastErr)
	}
	return "", nil, lastErr
}

// startSeed runs `p2pcdn seed` on dir until it prints all n files, and
// returns their hashes by base name.
func (b *bench) startSeed(ctx context.Context, mediator, dir string, n int) (*daemon, map[string]string, error) {
	return b.startSeedWith(ctx, b.bin, mediator, dir, n)
}

// startSeedWith is startSeed with another p2pcdn binary.
func (b *bench) startSeedWith(ctx context.Context, bin, mediator, dir string, n int) (*daemon, map[string]string, error) {
	hashes := map[string]string{}
	ready := func(line string) bool {
		if m := seedLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			hashes[filepath.Base(m[3])] = m[1]
		}
		return len(hashes) >= n
	}
	d, _, err := b.startDaemon(ctx, ready, bin, "seed", "--ice-loopback", "--no-cache", "--mediator", mediator, dir)
	if err != nil {
		return nil, nil, err
	}
	return d, hashes, nil
}

// getSummary is what `p2pcdn get --json` prints.
type getSummary struct {
	TotalLength int64  `json:"total_length"`
	Downloaded  int64  `json:"downloaded"`
	Peers       int    `json:"peers"`
	ElapsedMS   int64  `json:"elapsed_ms"`
	Uploaded    *int64 `json:"uploaded"` // not printed by every version

}

// get runs one whole `p2pcdn get` into a fresh directory and removes the
// file afterwards.
func (b *bench) get(ctx context.Context, mediator, hash string) (run, getSummary, error) {
	return b.getWith(ctx, b.bin, mediator, hash)
}

// getWith is get with another p2pcdn binary.
func (b *bench) getWith(ctx context.Context, bin, mediator, hash string) (run, getSummary, error) {
	out, err := os.MkdirTemp(b.work, "get-")
	if err != nil {
		return run{}, getSummary{}, err
	}
	defer os.RemoveAll(out)
	r, err := b.runTimed(ctx, bin, "get", "--ice-loopback", "--mediator", mediator, "--json", "--timeout", "2m", "-o", out, hash)
	var s getSummary
	if err != nil {
		return r, s, err
	}
	if err := json.Unmarshal(r.stdout, &s); err != nil {
		return r, s, fmt.Errorf("get --json printed %q: %w", strings.TrimSpace(string(r.stdout)), err)
	}
	return r, s, nil
}

// httpRun is the whole-process HTTP lower bound for one file.
func (b *bench) httpRun(ctx context.Context, url string) (run, error) {
	out := filepath.Join(b.work, "http.out")
	defer os.Remove(out)
	return b.runTimed(ctx, b.self, httpGetArg, url, out)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mibps(size int64, d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }

func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1e6 && int64(n)%1e6 == 0:
		return fmt.Sprintf("%d MB", n/1e6)
	case n >= 1e3 && n%1e3 == 0:
		return fmt.Sprintf("%d KB", n/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

func (b *bench) latency(ctx context.Context) ([]row, error) {
	const title = "Latency (whole-process get)"
	sizes := []int64{1e3, 1e6, 10e6}
	dir := filepath.Join(b.work, "files", "lat")
	for i, s := range sizes {
		if _, err := b.makeFile(dir, fmt.Sprintf("lat-%d.bin", s), s, uint64(i+1)); err != nil {
			return nil, err
		}
	}
	med, _, err := b.startMediator(ctx)
	if err != nil {
		return nil, err
	}
	seed, hashes, err := b.startSeed(ctx, med, dir, len(sizes))
	if err != nil {
		return nil, err
	}
	_ = seed
	// One untimed round warms the page cache and the mediator.
	if _, _, err := b.get(ctx, med, hashes["lat-1000.bin"]); err != nil {
		return nil, err
	}
	var rows []row
	for _, s := range sizes {
		name := fmt.Sprintf("lat-%d.bin", s)
		url := b.webURL + "/files/lat/" + name
		r := row{group: title, name: fmt.Sprintf("p2pcdn get %s, one seeder, one mediator", sizeName(s)), unit: unitMS,
			baseName: "Go net/http client process, same file from a local net/http server"}
		for i := range b.sz.runs {
			// Alternate the order so neither side always runs on a warmer machine.
			first, second := 0, 1
			if i%2 == 1 {
				first, second = 1, 0
			}
			for _, which := range []int{first, second} {
				if which == 0 {
					g, _, err := b.get(ctx, med, hashes[name])
					if err != nil {
						return rows, err
					}
					r.got = append(r.got, ms(g.wall))
				} else {
					h, err := b.httpRun(ctx, url)
					if err != nil {
						return rows, err
					}
					r.base = append(r.base, ms(h.wall))
				}
			}
		}
		rows = append(rows, r)
	}
	rows = append(rows, b.federatedLatency(ctx, title, dir, hashes))
	return rows, nil
}

// federatedLatency measures get through a second mediator federated with the
// seeder's, interleaved with the same get through the seeder's own mediator,
// when `p2pcdn mediator` has the federation flags.
func (b *bench) federatedLatency(ctx context.Context, title, dir string, hashes map[string]string) row {
	r := row{group: title, name: "p2pcdn get 1 MB across two federated mediators (seeder on one, get on the other)", unit: unitMS,
		baseName: "the same get through the seeder's own mediator, interleaved"}
	if !b.hasFederation(ctx) {
		r.note = "not measured: federation not available (`p2pcdn mediator` has no --dht-listen/--bootstrap yet)"
		return r
	}
	fail := func(err error) row {
		r.got, r.base = nil, nil
		r.note = "failed: " + firstLine(err.Error())
		return r
	}
	pa, err := freeUDPPort()
	if err != nil {
		return fail(err)
	}
	medA, _, err := b.startMediator(ctx, "--dht-listen", fmt.Sprintf("127.0.0.1:%d", pa))
	if err != nil {
		return fail(err)
	}
	medB, _, err := b.startMediator(ctx, "--bootstrap", fmt.Sprintf("127.0.0.1:%d", pa))
	if err != nil {
		return fail(err)
	}
	if _, _, err := b.startSeed(ctx, medA, dir, len(hashes)); err != nil {
		return fail(err)
	}
	hash := hashes["lat-1000000.bin"]
	// An untimed first get waits out the announcement's way through the
	// DHT; the timed ones measure a warm federation.
	if _, _, err := b.get(ctx, medB, hash); err != nil {
		return fail(err)
	}
	for i := range b.sz.runs {
		order := []string{medB, medA}
		if i%2 == 1 {
			order = []string{medA, medB}
		}
		for _, med := range order {
			g, _, err := b.get(ctx, med, hash)
			if err != nil {
				return fail(err)
			}
			if med == medB {
				r.got = append(r.got, ms(g.wall))
			} else {
				r.base = append(r.base, ms(g.wall))
			}
		}
	}
	return r
}

// freeUDPPort asks the kernel for an unused loopback UDP port.
func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// hasFederation reports whether `p2pcdn mediator` federates (--dht-listen,
// --bootstrap); asked once per bench.
func (b *bench) hasFederation(ctx context.Context) bool {
	b.fedOnce.Do(func() {
		help, _ := exec.CommandContext(ctx, b.bin, "mediator", "--help").CombinedOutput()
		b.federation = strings.Contains(string(help), "--bootstrap") && strings.Contains(string(help), "--dht-listen")
	})
	return b.federation
}

func (b *bench) throughput(ctx context.Context) ([]row, error) {
	const title = "Throughput and cost (native)"
	dir := filepath.Join(b.work, "files", "tp")
	big := b.sz.big
	if _, err := b.makeFile(dir, "big.bin", big, 11); err != nil {
		return nil, err
	}
	smallDir := filepath.Join(b.work, "files", "tp-small")
	if _, err := b.makeFile(smallDir, "small.bin", 1e6, 12); err != nil {
		return nil, err
	}
	med, _, err := b.startMediator(ctx)
	if err != nil {
		return nil, err
	}

	// The memory baselines: seed and get of a 1 MB file.
	small, smallHashes, err := b.startSeed(ctx, med, smallDir, 1)
	if err != nil {
		return nil, err
	}
	getRSS := row{group: title, name: fmt.Sprintf("peak RSS of p2pcdn get, %s file", sizeName(big)), unit: unitMiB,
		baseName: "peak RSS of p2pcdn get, 1 MB file"}
	seedRSS := row{group: title, name: fmt.Sprintf("peak RSS of p2pcdn seed, %s file (hashing, then serving every get of this group)", sizeName(big)), unit: unitMiB,
		baseName: "peak RSS of p2pcdn seed, 1 MB file, one get"}
	for range b.sz.bigRuns {
		g, _, err := b.get(ctx, med, smallHashes["small.bin"])
		if err != nil {
			return nil, err
		}
		getRSS.base = append(getRSS.base, float64(g.maxRSS)/(1<<20))
	}
	seedRSS.base = append(seedRSS.base, float64(small.stop().maxRSS)/(1<<20))

	seed, hashes, err := b.startSeed(ctx, med, dir, 1)
	if err != nil {
		return nil, err
	}
	hash := hashes["big.bin"]
	one := row{group: title, name: fmt.Sprintf("p2pcdn get %s from one seeder (whole process)", sizeName(big)), unit: unitMiBs,
		baseName: rawProcName}
	cost := row{group: title, name: "CPU seconds per GB moved, seed + get", unit: unitCPUPerGB,
		baseName: "that raw pion, both processes"}
	// With --before, the same get between a seeder and a get of that build,
	// on a mediator of their own, interleaved with the others.
	var prev *oneSeeder
	if b.before != "" {
		medB, _, err := b.startMediator(ctx)
		if err != nil {
			return nil, err
		}
		seedB, hashesB, err := b.startSeedWith(ctx, b.before, medB, dir, 1)
		if err != nil {
			return nil, fmt.Errorf("--before build: %w", err)
		}
		prev = &oneSeeder{bin: b.before, med: medB, seed: seedB, hash: hashesB["big.bin"]}
	}
	cur := &oneSeeder{bin: b.bin, med: med, seed: seed, hash: hash}
	var prevTP, prevCost []float64
	gb := float64(big) / 1e9
	for i := range b.sz.bigRuns {
		// Rotate the order so no side always runs on a warmer machine.
		sides := []int{0, 1, 2}
		for range i % 3 {
			sides = append(sides[1:], sides[0])
		}
		for _, side := range sides {
			switch {
			case side == 0:
				raw, err := b.rawPionProcs(ctx, big)
				if err != nil {
					return nil, fmt.Errorf("raw pion run %d: %w", i+1, err)
				}
				one.base = append(one.base, mibps(big, raw.wall))
				cost.base = append(cost.base, raw.cpu.Seconds()/gb)
			case side == 1:
				g, cpu, err := b.getFrom(ctx, cur)
				if err != nil {
					return nil, err
				}
				one.got = append(one.got, mibps(big, g.wall))
				cost.got = append(cost.got, cpu.Seconds()/gb)
				getRSS.got = append(getRSS.got, float64(g.maxRSS)/(1<<20))
			case side == 2 && prev != nil:
				g, cpu, err := b.getFrom(ctx, prev)
				if err != nil {
					return nil, fmt.Errorf("--before build: %w", err)
				}
				prevTP = append(prevTP, mibps(big, g.wall))
				prevCost = append(prevCost, cpu.Seconds()/gb)
			}
		}
	}
	var beforeRows []row
	if prev != nil {
		prev.seed.stop()
		name := filepath.Base(b.before)
		beforeRows = []row{
			{group: title, name: fmt.Sprintf("--before build (%s): get %s from one seeder", name, sizeName(big)), unit: unitMiBs,
				got: prevTP, baseName: rawProcName, base: one.base},
			{group: title, name: fmt.Sprintf("this build: get %s from one seeder", sizeName(big)), unit: unitMiBs,
				got: one.got, baseName: fmt.Sprintf("--before build (%s), interleaved", name), base: prevTP},
			{group: title, name: fmt.Sprintf("--before build (%s): CPU seconds per GB, seed + get", name), unit: unitCPUPerGB,
				got: prevCost, baseName: "raw pion, both processes", base: cost.base},
			{group: title, name: "this build: CPU seconds per GB, seed + get", unit: unitCPUPerGB,
				got: cost.got, baseName: fmt.Sprintf("--before build (%s), interleaved", name), base: prevCost},
		}
	}

	four := row{group: title, name: fmt.Sprintf("p2pcdn get %s from four seeders", sizeName(big)), unit: unitMiBs,
		baseName: "the same get from one seeder (row above)", base: one.got}
	for range 3 {
		if _, _, err := b.startSeed(ctx, med, dir, 1); err != nil {
			return nil, err
		}
	}
	var peers []int
	for range b.sz.bigRuns {
		g, s, err := b.get(ctx, med, hash)
		if err != nil {
			return nil, err
		}
		four.got = append(four.got, mibps(big, g.wall))
		peers = append(peers, s.Peers)
	}
	four.note = fmt.Sprintf("peers that sent data per run: %v", peers)
	seedRSS.got = append(seedRSS.got, float64(seed.stop().maxRSS)/(1<<20))
	return append([]row{one, four, cost, getRSS, seedRSS}, beforeRows...), nil
}

// rawProcName describes the native throughput baseline (rawproc.go).
const rawProcName = "raw pion between two processes, tuned: detached channel, 4 MiB socket buffers and SCTP window, " +
	"64 KiB messages; channel open to last byte"

// oneSeeder is a seeder with its mediator, and the build that gets from it.
type oneSeeder struct {
	bin, med, hash string
	seed           *daemon
}

// getFrom runs one get from s and returns it with the CPU of the get and of
// the seeder meanwhile.
func (b *bench) getFrom(ctx context.Context, s *oneSeeder) (run, time.Duration, error) {
	c0, err := s.seed.cpu()
	if err != nil {
		return run{}, 0, err
	}
	g, _, err := b.getWith(ctx, s.bin, s.med, s.hash)
	if err != nil {
		return g, 0, err
	}
	c1, err := s.seed.cpu()
	if err != nil {
		return g, 0, err
	}
	return g, g.cpu + c1 - c0, nil
}

func (b *bench) swarm(ctx context.Context) ([]row, error) {
	const title = "Swarm"
	dir := filepath.Join(b.work, "files", "swarm")
	size, n := b.sz.swarm, b.sz.swarmPeers
	if _, err := b.makeFile(dir, "swarm.bin", size, 21); err != nil {
		return nil, err
	}
	med, _, err := b.startMediator(ctx)
	if err != nil {
		return nil, err
	}
	_, hashes, err := b.startSeed(ctx, med, dir, 1)
	if err != nil {
		return nil, err
	}
	hash := hashes["swarm.bin"]
	total := row{group: title, name: fmt.Sprintf("one seeder, %d downloaders started together, %s: time until the last has the file", n, sizeName(size)),
		unit: unitS, baseName: fmt.Sprintf("one downloader alone, same seeder, times %d (the same downloads one after another)", n)}
	share := row{group: title, name: fmt.Sprintf("share of the %d downloaders' bytes uploaded by the seeder", n), unit: unitShare,
		baseName: fmt.Sprintf("best case (N-1)/N = %.0f%% from other downloaders, %.1f%% from the seeder", 100*float64(n-1)/float64(n), 100/float64(n))}
	var peerCounts []int
	for range b.sz.bigRuns {
		g, _, err := b.get(ctx, med, hash)
		if err != nil {
			return nil, err
		}
		total.base = append(total.base, g.wall.Seconds()*float64(n))

		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, n)
		sums := make([]getSummary, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, sums[i], errs[i] = b.get(ctx, med, hash)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return []row{total}, err
			}
		}
		total.got = append(total.got, time.Since(t0).Seconds())
		// The seeder uploaded what the downloaders received minus what
		// they uploaded to each other, when get reports its uploads.
		var down, up int64
		reported := true
		for _, s := range sums {
			peerCounts = append(peerCounts, s.Peers)
			down += s.Downloaded
			if s.Uploaded == nil {
				reported = false
			} else {
				up += *s.Uploaded
			}
		}
		if reported && down > 0 {
			share.got = append(share.got, 100*float64(down-up)/float64(down))
		}
	}
	if len(share.got) == 0 {
		share.note = fmt.Sprintf("not measured: `get --json` reports no uploaded bytes; peers that sent data to each downloader: %v", peerCounts)
	} else {
		share.base = []float64{100 / float64(n)}
	}
	return []row{total, share}, nil
}

func (b *bench) hashing(ctx context.Context) ([]row, error) {
	dir := filepath.Join(b.work, "files", "hash")
	path, err := b.makeFile(dir, "hash.bin", b.sz.hash, 31)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	if _, err := exec.LookPath("sha1sum"); err != nil {
		return nil, fmt.Errorf("sha1sum not found: %w", err)
	}
	if _, err := b.runTimed(ctx, "sha1sum", path); err != nil { // page cache warm for both
		return nil, err
	}
	r := row{group: "Hashing", name: fmt.Sprintf("p2pcdn hash --no-cache, %s file in the page cache", sizeName(b.sz.hash)), unit: unitMiBs,
		baseName: "sha1sum, same file"}
	for range max(b.sz.bigRuns, 2) {
		p, err := b.runTimed(ctx, b.bin, "hash", "--json", "--no-cache", path)
		if err != nil {
			return nil, err
		}
		s, err := b.runTimed(ctx, "sha1sum", path)
		if err != nil {
			return nil, err
		}
		r.got = append(r.got, mibps(b.sz.hash, p.wall))
		r.base = append(r.base, mibps(b.sz.hash, s.wall))
	}
	return []row{r}, nil
}

// selfCPU is this process's user + system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

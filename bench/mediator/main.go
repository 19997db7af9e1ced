// Command mediator-bench loads a mediator with many concurrent peers on
// loopback and reports throughput per CPU core, get_peers latency and
// resident memory per connected peer, measured on the mediator's own process
// (/proc/PID), so load generator and mediator never share a measurement.
//
// It starts the mediator itself, once per target:
//
//	go:   the p2pcdn binary given by -bin, as `p2pcdn mediator --listen ...`
//	node: bench/mediator/node/server.js, a minimal socket.io 4 mediator as the
//	      baseline measured in the same run
//
// Every peer connects over WebSocket, hands shake, announces one hash (peers
// are grouped in swarms of -swarm per hash) and then sends -rounds get_peers,
// one at a time, all peers at once (throughput phase). Then a few probe peers
// send get_peers at a modest rate while every other peer stays connected
// (latency phase), so the p99 reflects a loaded mediator, not a queue.
// See README.md for the command.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

func main() {
	var (
		n       = flag.Int("n", 10000, "concurrent peers")
		rounds  = flag.Int("rounds", 10, "get_peers per peer in the throughput phase")
		swarm   = flag.Int("swarm", 10, "peers per hash")
		probes  = flag.Int("probes", 2000, "get_peers in the latency phase")
		rate    = flag.Int("probe-rate", 500, "get_peers per second in the latency phase")
		dialers = flag.Int("dialers", 64, "connections opened in parallel")
		bin     = flag.String("bin", "", "p2pcdn binary for the go target (build it with: go build -o /tmp/p2pcdn ./cmd/p2pcdn)")
		nodeDir = flag.String("node-dir", "bench/mediator/node", "directory of the node baseline (npm ci there first)")
		targets = flag.String("targets", "go,node", "comma-separated targets to run: go, node")
		port    = flag.Int("port", 18888, "loopback port for the mediator under test")
	)
	flag.Parse()
	log.SetFlags(0)
	var results []result
	for _, target := range strings.Split(*targets, ",") {
		var cmd *exec.Cmd
		addr := "127.0.0.1:" + strconv.Itoa(*port)
		switch target {
		case "go":
			if *bin == "" {
				log.Fatal("mediator-bench: -bin is required for the go target")
			}
			cmd = exec.Command(*bin, append([]string{"mediator", "--listen", addr}, noPerAddressLimits(*bin)...)...)
		case "node":
			cmd = exec.Command("node", filepath.Join(*nodeDir, "server.js"), strconv.Itoa(*port))
		default:
			log.Fatalf("mediator-bench: unknown target %q", target)
		}
		r, err := run(target, cmd, addr, config{n: *n, rounds: *rounds, swarm: *swarm, probes: *probes, rate: *rate, dialers: *dialers})
		if err != nil {
			log.Fatalf("mediator-bench: %s: %v", target, err)
		}
		results = append(results, r)
	}
	fmt.Printf("\n%-6s %8s %14s %14s %10s %10s %12s %14s\n", "target", "peers", "answers/s/core", "events/s/core",
		"p50 ms", "p99 ms", "RSS KiB/peer", "live KiB/peer")
	for _, r := range results {
		live := "-"
		if r.livePerPeer > 0 {
			live = fmt.Sprintf("%.2f", r.livePerPeer/1024)
		}
		fmt.Printf("%-6s %8d %14.0f %14.0f %10.2f %10.2f %12.2f %14s\n", r.target, r.peers, r.answersPerCore, r.eventsPerCore,
			ms(r.p50), ms(r.p99), r.bytesPerPeer/1024, live)
	}
	if len(results) == 2 {
		a, b := results[0], results[1]
		fmt.Printf("\nratios %s/%s: answers/s/core %.2fx, p99 latency %.2fx, memory per peer %.2fx\n", a.target, b.target,
			a.answersPerCore/b.answersPerCore, float64(a.p99)/float64(b.p99), a.bytesPerPeer/b.bytesPerPeer)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type config struct {
	n, rounds, swarm, probes, rate, dialers int
}

type result struct {
	target         string
	peers          int
	answersPerCore float64 // peers answers per CPU-second of the mediator
	eventsPerCore  float64 // all events handled (in + out) per CPU-second, connect phase included
	p50, p99       time.Duration
	bytesPerPeer   float64
	livePerPeer    float64 // Go runtime's live heap + stacks per peer (go target only)
}

func run(target string, cmd *exec.Cmd, addr string, cfg config) (result, error) {
	res := result{target: target, peers: cfg.n}
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	pid := cmd.Process.Pid
	if err := waitListening(addr); err != nil {
		return res, err
	}
	time.Sleep(500 * time.Millisecond) // let the runtime settle before the baseline
	rss0, err := rss(pid)
	if err != nil {
		return res, err
	}
	cpu0, _ := cpuTime(pid)
	var live0 int64
	if target == "go" {
		live0, _ = goLive(addr)
	}
	log.Printf("%s: pid %d, RSS %.1f MiB idle; connecting %d peers", target, pid, float64(rss0)/(1<<20), cfg.n)

	ctx := context.Background()
	peers := make([]*peer, cfg.n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.dialers)
	start := time.Now()
	for i := range peers {
		g.Go(func() error {
			p, err := connect(gctx, addr, i, cfg.swarm)
			peers[i] = p
			return err
		})
	}
	if err := g.Wait(); err != nil {
		closeAll(peers)
		return res, err
	}
	defer closeAll(peers)
	connectWall := time.Since(start)
	time.Sleep(2 * time.Second)
	rss1, _ := rss(pid)
	cpu1, _ := cpuTime(pid)
	res.bytesPerPeer = float64(rss1-rss0) / float64(cfg.n)
	log.Printf("%s: %d peers connected in %v; RSS %.1f MiB (+%.0f B/peer)", target, cfg.n, connectWall.Round(time.Millisecond),
		float64(rss1)/(1<<20), res.bytesPerPeer)

	// Throughput: every peer sends rounds get_peers, one at a time.
	var answers atomic.Int64
	g, gctx = errgroup.WithContext(ctx)
	start = time.Now()
	for _, p := range peers {
		g.Go(func() error {
			for range cfg.rounds {
				if _, err := p.getPeers(gctx); err != nil {
					return err
				}
				answers.Add(1)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	wall := time.Since(start)
	cpu2, _ := cpuTime(pid)
	loadCPU := (cpu2 - cpu1).Seconds()
	res.answersPerCore = float64(answers.Load()) / loadCPU
	// Events: connect phase (handshake, established, announce) + load phase
	// (get_peers, peers), over the mediator's CPU time for both phases.
	events := float64(3*cfg.n) + 2*float64(answers.Load())
	res.eventsPerCore = events / (cpu2 - cpu0).Seconds()
	log.Printf("%s: %d answers in %v wall, %.2f CPU-s (%.2f cores busy)", target, answers.Load(), wall.Round(time.Millisecond),
		loadCPU, loadCPU/wall.Seconds())

	// Latency at a modest rate with every peer connected.
	lat := make([]time.Duration, 0, cfg.probes)
	var mu sync.Mutex
	tick := time.NewTicker(time.Second / time.Duration(cfg.rate))
	g, gctx = errgroup.WithContext(ctx)
	for i := range cfg.probes {
		<-tick.C
		p := peers[(i*7919)%len(peers)]
		g.Go(func() error {
			p.mu.Lock() // one request at a time per peer
			defer p.mu.Unlock()
			d, err := p.getPeers(gctx)
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
			return err
		})
	}
	tick.Stop()
	if err := g.Wait(); err != nil {
		return res, err
	}
	if live0 > 0 {
		// After the load phases several GCs have run with every peer connected.
		live1, err := goLive(addr)
		if err == nil {
			res.livePerPeer = float64(live1-live0) / float64(cfg.n)
		}
	}
	slices.Sort(lat)
	res.p50 = lat[len(lat)/2]
	res.p99 = lat[len(lat)*99/100]
	return res, nil
}

type peer struct {
	mu   sync.Mutex
	c    *socketio.Conn
	hash string
}

func connect(ctx context.Context, addr string, i, swarm int) (*peer, error) {
	c, err := socketio.Dial(ctx, "ws://"+addr, &socketio.DialOptions{HandshakeTimeout: time.Minute})
	if err != nil {
		return nil, err
	}
	p := &peer{c: c, hash: fmt.Sprintf("%040x", 1+i/swarm)}
	id := fmt.Sprintf("%040x", 1<<32+i)
	if err := c.Emit(mediation.EventHandshake, id, 0); err != nil {
		return p, err
	}
	if _, err := p.await(ctx, mediation.EventEstablished); err != nil {
		return p, err
	}
	return p, c.Emit(mediation.EventAnnounce, p.hash)
}

// getPeers asks for the peer's own hash and returns the round trip time.
func (p *peer) getPeers(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	if err := p.c.Emit(mediation.EventGetPeers, p.hash); err != nil {
		return 0, err
	}
	if _, err := p.await(ctx, mediation.EventPeers); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

func (p *peer) await(ctx context.Context, name string) (socketio.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		ev, err := p.c.ReadEvent(ctx)
		if err != nil {
			return ev, fmt.Errorf("waiting for %s: %w", name, err)
		}
		if ev.Name == name {
			return ev, nil
		}
	}
}

func closeAll(peers []*peer) {
	for _, p := range peers {
		if p != nil {
			p.c.Close()
		}
	}
}

func waitListening(addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mediator never listened on %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rss reads the resident set size of process pid.
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// cpuTime reads the user+system CPU time of process pid.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck, nil
}

// noPerAddressLimits returns the flags that lift a p2pcdn mediator's limits
// per client address, when it has them: every peer of the load test comes
// from 127.0.0.1.
func noPerAddressLimits(bin string) []string {
	help, _ := exec.Command(bin, "mediator", "--help").CombinedOutput()
	if !strings.Contains(string(help), "--max-conns-per-ip") {
		return nil
	}
	return []string{"--max-conns-per-ip", "0", "--max-sessions-per-ip", "0"}
}

// goLive scrapes a p2pcdn mediator's /metrics for the Go runtime's live heap
// plus goroutine stacks. Other mediators have no such page: 0 and an error.
func goLive(addr string) (int64, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %s", resp.Status)
	}
	var total int64
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if ok && (name == "go_gc_heap_live_bytes" || name == "go_memory_stacks_bytes") {
			v, err := strconv.ParseFloat(val, 64) // client_golang writes large values as 1.2e+06
			if err != nil {
				return 0, err
			}
			total += int64(v)
			found++
		}
	}
	if found != 2 {
		return 0, errors.New("/metrics lacks the Go runtime gauges")
	}
	return total, nil
}

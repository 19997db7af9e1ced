// Command bench measures p2pcdn against baselines and against WebTorrent,
// all on 127.0.0.1, and prints one Markdown table (also written to --out).
// Every figure sits next to a baseline measured in the same invocation, so a
// busy machine moves both alike; the ratio is the result. See README.md.
//
//	go run ./bench            # default run, under 15 minutes on 2 cores
//	go run ./bench --quick    # smoke run, a few minutes
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// groups are the --only names, in the order they run.
var groups = []string{"latency", "throughput", "swarm", "hash", "sites", "browser", "webtorrent", "mediator", "wan"}

// sizes is how much a run moves; --quick shrinks everything.
type sizes struct {
	runs, bigRuns int
	big           int64 // native throughput file
	browserBig    int64 // browser throughput file
	swarm         int64 // swarm file
	swarmPeers    int
	hash          int64
	mediatorPeers int
	siteFiles     int // files of the seeded asset tree
	siteRuns      int // seeds of that tree
	manyGets      int // files fetched by one get
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == httpGetArg {
		if err := httpGet(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "bench httpget: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && (os.Args[1] == rawSendArg || os.Args[1] == rawRecvArg) {
		if err := rawChild(os.Args[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "bench %s: %v\n", os.Args[1], err)
			os.Exit(1)
		}
		return
	}
	var (
		quick = flag.Bool("quick", false, "smoke run: fewer runs and smaller files (a few minutes)")
		runs  = flag.Int("runs", 0, "runs per latency figure (default 11, --quick 3); big transfers use half as many, at least 1")
		out   = flag.String("out", "bench/results.md", "also write the table to `FILE`")
		only  = flag.String("only", "", "comma-separated groups to run: "+strings.Join(groups, ", ")+" (default all)")
		dir   = flag.String("dir", os.TempDir(), "where to put the temporary files")
		keep  = flag.Bool("keep", false, "keep the temporary directory (logs, files) for a look afterwards")
		prev  = flag.String("before", "", "a p2pcdn `BINARY` built before a change: the native get and the page ← seed rows\n"+
			"also run with it, interleaved, and print before/after ratios")
	)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sz := sizes{runs: 11, bigRuns: 5, big: 256 << 20, browserBig: 64 << 20, swarm: 64 << 20, swarmPeers: 8, hash: 1 << 30, mediatorPeers: 10000,
		siteFiles: 100_000, siteRuns: 2, manyGets: 100}
	if *quick {
		sz = sizes{runs: 3, bigRuns: 1, big: 64 << 20, browserBig: 16 << 20, swarm: 16 << 20, swarmPeers: 8, hash: 256 << 20, mediatorPeers: 1000,
			siteFiles: 10_000, siteRuns: 1, manyGets: 20}
	}
	if *runs > 0 {
		sz.runs = *runs
		sz.bigRuns = max(1, *runs/2)
	}
	want := map[string]bool{}
	for _, g := range strings.Split(*only, ",") {
		if g = strings.TrimSpace(g); g == "" {
			continue
		}
		if !contains(groups, g) {
			fmt.Fprintf(os.Stderr, "bench: --only %q: unknown group; want some of %s\n", g, strings.Join(groups, ", "))
			os.Exit(2)
		}
		want[g] = true
	}
	if len(want) == 0 {
		for _, g := range groups {
			want[g] = true
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t0 := time.Now()
	b, err := newBench(ctx, log, *dir, sz)
	if err == nil && *prev != "" {
		b.before, err = filepath.Abs(*prev)
		if err == nil {
			_, err = os.Stat(b.before)
		}
		if err != nil {
			b.close()
			os.RemoveAll(b.work)
			err = fmt.Errorf("--before: %w", err)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
	rows := b.runGroups(ctx, want)
	b.close()
	if *keep {
		fmt.Fprintf(os.Stderr, "kept %s\n", b.work)
	} else {
		os.RemoveAll(b.work)
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "## p2pcdn benchmark\n\n%s, %s; %d CPUs, %s/%s, %s; mode %s; took %s.\n"+
		"Medians over the runs shown (n), spread as min–max. Ratio = median ÷ baseline median, same run.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH,
		runtime.Version(), modeName(*quick), time.Since(t0).Round(time.Second))
	writeTable(&sb, rows)
	fmt.Print(sb.String())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(sb.String()), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "bench: writing %s: %v\n", *out, err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", *out)
	}
}

func modeName(quick bool) string {
	if quick {
		return "--quick"
	}
	return "default"
}

// bench holds what every group shares: the binaries, the files, the local
// web server and the processes to stop at the end.
type bench struct {
	log     *slog.Logger
	sz      sizes
	root    string // module root
	work    string // temporary directory
	bin     string // p2pcdn binary
	before  string // --before: an older p2pcdn binary to compare with; "" for none
	self    string // this program, for the httpget child
	env     []string
	daemons []*daemon
	web     *http.Server
	webURL  string // http://127.0.0.1:PORT
	browser *chrome

	fedOnce    sync.Once
	federation bool // p2pcdn mediator has --dht-listen and --bootstrap

	// figures one group leaves for another
	httpMS1MB, rawPageMiBs        []float64
	pageToPage1MB, pageToPageMiBs []float64
}

func newBench(ctx context.Context, log *slog.Logger, dir string, sz sizes) (*bench, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(dir, "p2pcdn-bench-")
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b := &bench{log: log, sz: sz, root: root, work: work, self: self, bin: filepath.Join(work, "p2pcdn")}
	// Children keep their hash cache in the temporary directory, and never
	// pick up a mediator or ICE server from the caller's environment.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "P2PCDN_") && !strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			b.env = append(b.env, kv)
		}
	}
	b.env = append(b.env, "XDG_CACHE_HOME="+filepath.Join(work, "cache"))
	log.Info("building p2pcdn", "to", b.bin)
	build := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "./cmd/p2pcdn")
	build.Dir, build.Stderr = root, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/p2pcdn: %w", err)
	}
	if err := b.startWeb(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *bench) runGroups(ctx context.Context, want map[string]bool) []row {
	var rows []row
	for _, g := range groups {
		if !want[g] || ctx.Err() != nil {
			continue
		}
		b.log.Info("running", "group", g)
		t0 := time.Now()
		var rs []row
		var err error
		switch g {
		case "latency":
			rs, err = b.latency(ctx)
		case "throughput":
			rs, err = b.throughput(ctx)
		case "swarm":
			rs, err = b.swarm(ctx)
		case "hash":
			rs, err = b.hashing(ctx)
		case "sites":
			rs, err = b.sitesRows(ctx)
		case "browser":
			rs, err = b.browserRows(ctx)
		case "webtorrent":
			rs, err = b.webtorrentRows(ctx)
		case "mediator":
			rs, err = b.mediatorRows(ctx)
		case "wan":
			rs, err = b.wanRows(ctx)
		}
		if err != nil {
			b.log.Error("group failed", "group", g, "err", err)
			rs = append(rs, row{group: groupTitle(g), name: g, note: "failed: " + firstLine(err.Error())})
		}
		b.log.Info("done", "group", g, "took", time.Since(t0).Round(time.Second))
		rows = append(rows, rs...)
		b.stopDaemons()
	}
	return rows
}

func groupTitle(g string) string {
	switch g {
	case "latency":
		return "Latency (whole-process get)"
	case "throughput":
		return "Throughput and cost (native)"
	case "swarm":
		return "Swarm"
	case "hash":
		return "Hashing"
	case "sites":
		return "Sites (many files)"
	case "browser":
		return "Browser (headless Chromium)"
	case "webtorrent":
		return "Competitor: WebTorrent (headless Chromium)"
	case "mediator":
		return "Mediator"
	case "wan":
		return "WAN (netlab: downloader a round trip away from the seeder and its mediator)"
	}
	return g
}

func (b *bench) stopDaemons() {
	for _, d := range b.daemons {
		d.stop()
	}
	b.daemons = nil
}

func (b *bench) close() {
	b.stopDaemons()
	if b.browser != nil {
		b.browser.close()
	}
	if b.web != nil {
		b.web.Close()
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the bench from inside the p2pcdn module (go run ./bench)")
	}
	return filepath.Dir(mod), nil
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until addr accepts connections, or exited closes.
func waitListening(ctx context.Context, addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("exited before listening on %s", addr)
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after 30 s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

package nat

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/testenv"
	"github.com/p2pcdn/p2pcdn/internal/testing/netlab"
)

// bin is the p2pcdn binary under test, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	// The cells mostly wait on the network and on each other; at GOMAXPROCS at a time (two in CI) the
	// matrix would take minutes.
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "16")
	}
	return testenv.RunWithP2PCDN(m, "e2e/nat", &bin)
}

// Bounds against hangs, not measures of speed: the machine may be busy.
const (
	startTimeout = 60 * time.Second
	runTimeout   = 3 * time.Minute
	// getTimeout is `get --timeout` in the cells that must succeed; failTimeout in those that must
	// fail, which must give up well before it.
	getTimeout  = "60s"
	failTimeout = 60 * time.Second
	fileSize    = 1 << 20
	mediatorTCP = "8888"
)

// features are what this build of p2pcdn offers, read from its --help, so a cell that needs a missing
// feature can say so instead of failing for it.
type features struct {
	turn   bool // mediator --turn: a TURN relay
	stun   bool // the mediator serves STUN (it has --no-stun to switch it off)
	exit5  bool // get exits 5 when peers were found but none could be connected
	iceTCP bool // seed --ice-tcp-listen
}

func probe(t *testing.T) features {
	t.Helper()
	help := func(cmd string) string {
		out, err := exec.Command(bin, cmd, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("p2pcdn %s --help: %v\n%s", cmd, err, out)
		}
		return string(out)
	}
	return parseFeatures(help("mediator"), help("get"), help("seed"))
}

var exit5RE = regexp.MustCompile(`(?i)exit status:[^\n]*[,:] 5 [a-z]`)

// parseFeatures reads features from the --help texts of `mediator`, `get` and `seed`.
func parseFeatures(mediatorHelp, getHelp, seedHelp string) features {
	return features{
		turn:   strings.Contains(mediatorHelp, "--turn"),
		stun:   strings.Contains(mediatorHelp, "--no-stun"),
		exit5:  exit5RE.MatchString(getHelp),
		iceTCP: strings.Contains(seedHelp, "--ice-tcp-listen"),
	}
}

// missing names the first feature of need that this build lacks, or "".
func (f features) missing(need []string) string {
	for _, n := range need {
		switch {
		case n == "turn" && !f.turn:
			return "the mediator's TURN relay (`p2pcdn mediator --turn`, issue 10 item 1)"
		case n == "stun" && !f.stun:
			return "the mediator's STUN server (`p2pcdn mediator` without --no-stun, issue 10 item 1)"
		case n == "exit5" && !f.exit5:
			return "`get` exit code 5 when no peer could be connected (issue 10 item 6)"
		case n == "icetcp" && !f.iceTCP:
			return "ICE-TCP on seeders (`seed --ice-tcp-listen`, issue 10 item 3)"
		}
	}
	return ""
}

var listeningRE = regexp.MustCompile(`mediator listening.* addr=(\S+)`)

// startMediator runs `p2pcdn mediator` with its defaults on h (DHT included: no bootstrap, so it talks
// to nobody) plus extra flags, and returns the URL peers are given.
func startMediator(t *testing.T, h *netlab.Host, extra ...string) string {
	t.Helper()
	addr := h.Addr.String() + ":" + mediatorTCP
	p := h.Start(t, "mediator", bin, "", append([]string{"mediator", "--listen", addr}, extra...)...)
	p.WaitOutput(listeningRE, startTimeout)
	return "ws://" + addr
}

var seedingRE = regexp.MustCompile(`seeding (\d+) file\(s\)`)

// startSeeder writes fileSize random bytes and seeds them from h (with extra flags); it returns the file's hash and the
// bytes' SHA-256.
func startSeeder(t *testing.T, h *netlab.Host, med string, extra ...string) (hash, sum string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "cell.bin")
	sum = writeRandom(t, path)
	args := append([]string{"seed", "--json", "--no-cache", "--verbose", "--mediator", med}, extra...)
	p := h.Start(t, "seeder", bin, dir, append(args, path)...)
	n, _ := strconv.Atoi(p.WaitOutput(seedingRE, startTimeout)[1])
	if n != 1 {
		t.Fatalf("seeder seeds %d files, want 1", n)
	}
	// stdout and stderr are copied apart: the dictionary may still be on its way.
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(p.Stdout(), "\n") {
		if time.Now().After(deadline) {
			t.Fatalf("seeder announced its file but printed %q", p.Stdout())
		}
		time.Sleep(10 * time.Millisecond)
	}
	sc := bufio.NewScanner(strings.NewReader(p.Stdout()))
	sc.Buffer(nil, 1<<20)
	sc.Scan()
	info, err := content.ParseInfo(sc.Bytes())
	if err != nil {
		t.Fatalf("seeder printed a bad info dictionary %q: %v", sc.Text(), err)
	}
	return info.FullHash, sum
}

// getResult is how one `p2pcdn get` ended.
type getResult struct {
	code   int
	took   time.Duration // whole process, start to exit
	sum    string        // SHA-256 of the file it wrote, when it exited 0
	stderr string
}

// runGet runs `p2pcdn get` on h to its end.
func runGet(t *testing.T, h *netlab.Host, med, hash, timeout string) getResult {
	t.Helper()
	dir := t.TempDir()
	start := time.Now()
	p := h.Start(t, "get", bin, dir, "get", "--json", "--verbose", "--timeout", timeout, "--mediator", med, "-o", "out.bin", hash)
	r := getResult{code: p.Wait(runTimeout)}
	r.took = time.Since(start)
	r.stderr = p.Stderr()
	if r.code == 0 {
		r.sum = fileSHA256(t, filepath.Join(dir, "out.bin"))
	}
	return r
}

// writeRandom writes fileSize random bytes to path and returns their SHA-256 in hex.
func writeRandom(t *testing.T, path string) string {
	return testenv.WriteRandom(t, path, fileSize, rand.Uint64())
}

func fileSHA256(t *testing.T, path string) string { return testenv.FileSHA256(t, path) }

// b64JS defines blobToBase64(blob). The pages are plain http on a lab address, an insecure context
// without WebCrypto, so their bytes are checked in Go.
const b64JS = `const blobToBase64 = (blob) => new Promise((resolve, reject) => {
	const r = new FileReader();
	r.onload = () => resolve(r.result.slice(r.result.indexOf(',') + 1));
	r.onerror = () => reject(r.error);
	r.readAsDataURL(blob); });`

// page is a tab in Chromium on a lab host, with the mediator's web library loaded and connected with
// its defaults (so no ICE servers but the mediator's).
type page struct {
	tab context.Context
}

func openPage(t *testing.T, h *netlab.Host, med string) *page {
	t.Helper()
	b := h.Chromium(t)
	origin := "http://" + strings.TrimPrefix(med, "ws://")
	ctx, cancel := context.WithTimeout(b.Tab(), startTimeout)
	defer cancel()
	// Any page of the mediator's origin will do; the library is added to it as a script.
	if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/healthz")); err != nil {
		t.Fatalf("opening %s/healthz: %v", origin, err)
	}
	p := &page{tab: b.Tab()}
	p.eval(t, startTimeout, `new Promise((resolve, reject) => {
		const s = document.createElement('script');
		s.src = '/p2pcdn.js';
		s.onload = () => resolve(true);
		s.onerror = () => reject(new Error('loading /p2pcdn.js failed'));
		document.head.appendChild(s); })`)
	p.eval(t, startTimeout, `p2pcdn.connect().then((n) => { window.node = n; return true; })`)
	return p
}

// eval runs JavaScript in the page, awaiting a returned promise, and returns its value as JSON text.
func (p *page) eval(t *testing.T, timeout time.Duration, expr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.tab, timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](`Promise.resolve(`+expr+`).then((v) => JSON.stringify(v))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %.80q: %v", expr, err)
	}
	s, _ := v.(string)
	return s
}

// seed shares fileSize random bytes from the page and returns their hash and SHA-256.
func (p *page) seed(t *testing.T) (hash, sum string) {
	t.Helper()
	data := make([]byte, fileSize)
	var key [32]byte
	for i := range key {
		key[i] = byte(rand.Uint32())
	}
	_, _ = rand.NewChaCha8(key).Read(data)
	digest := sha256.Sum256(data)
	var r struct{ Hash string }
	out := p.eval(t, startTimeout, `(async () => {
		const bytes = Uint8Array.from(atob("`+base64.StdEncoding.EncodeToString(data)+`"), (c) => c.charCodeAt(0));
		const info = await node.seed(new Blob([bytes]), {name: "cell.bin"});
		return {Hash: info.full_hash}; })()`)
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Hash == "" {
		t.Fatalf("page seed gave %s (%v)", out, err)
	}
	return r.Hash, hex.EncodeToString(digest[:])
}

// fetch fetches hash in the page and returns the bytes' SHA-256 and how long fetch took, or the error
// the page reported.
func (p *page) fetch(t *testing.T, hash string) (sum string, took time.Duration, err error) {
	t.Helper()
	var r struct {
		Data  string // base64
		MS    float64
		Error string
	}
	out := p.eval(t, failTimeout+30*time.Second, `(async () => { `+b64JS+`
		const t0 = performance.now(), limit = `+strconv.Itoa(int(failTimeout.Milliseconds()))+`;
		try {
			// Bounded here too, for libraries whose fetch waits forever.
			const blob = await Promise.race([node.fetch(`+strconv.Quote(hash)+`, {timeout: limit}),
				new Promise((_, reject) => setTimeout(() => reject(new Error('no file after ' + limit + ' ms')), limit))]);
			const ms = performance.now() - t0;
			return {Data: await blobToBase64(blob), MS: ms};
		} catch (e) { return {Error: String(e), MS: performance.now() - t0}; } })()`)
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("page fetch gave %s (%v)", out, err)
	}
	took = time.Duration(r.MS * float64(time.Millisecond))
	if r.Error != "" {
		return "", took, fmt.Errorf("page: %s", r.Error)
	}
	data, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		t.Fatalf("page fetch returned bad base64: %v", err)
	}
	digest := sha256.Sum256(data)
	return hex.EncodeToString(digest[:]), took, nil
}

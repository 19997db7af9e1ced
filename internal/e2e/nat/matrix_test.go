package nat

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/testing/netlab"
)

// where a peer sits.
type where string

const (
	public     where = "public"
	cone       where = "cone"
	symmetric  where = "symmetric"
	udpBlocked where = "udp-blocked" // behind a cone NAT that drops all UDP
)

// end is one side of a cell: a native process ("go") or a page in Chromium ("page"), and where it sits.
type end struct {
	kind string
	at   where
}

func (e end) String() string { return e.kind + " " + string(e.at) }

// cell is one transfer of the matrix: fileSize bytes from a seeding end to a fetching end.
type cell struct {
	from, to end
	turn     bool     // the mediator runs with --turn
	iceTCP   bool     // the (native) seeder also accepts ICE over TCP (seed --ice-tcp-listen)
	fail     bool     // no path exists: the (native) getter must give up with exit code 5
	need     []string // features (see features.missing) the cell needs to pass
}

func (c cell) String() string {
	s := c.from.String() + " → " + c.to.String()
	if !c.turn {
		s += ", no TURN"
	}
	if c.iceTCP {
		s += ", ICE-TCP"
	}
	return s
}

// relayOnly reports whether no direct path can exist, so the bytes must go through the relay.
func (c cell) relayOnly() bool {
	if c.iceTCP && (c.from.at == public || c.to.at == public) {
		return false
	}
	if c.from.at == udpBlocked || c.to.at == udpBlocked {
		return true
	}
	return c.from.at != public && c.to.at != public && (c.from.at == symmetric || c.to.at == symmetric)
}

var (
	goAt   = func(w where) end { return end{"go", w} }
	pageAt = func(w where) end { return end{"page", w} }
)

// matrix is every cell. Each gets its own mediator, hosts and routers, so the internet router's counters
// tell its traffic apart from the others'.
var matrix = []cell{
	{from: goAt(public), to: goAt(cone), turn: true},
	{from: goAt(cone), to: goAt(public), turn: true},
	{from: goAt(public), to: pageAt(cone), turn: true},
	{from: pageAt(public), to: pageAt(cone), turn: true},
	{from: goAt(cone), to: goAt(cone), turn: true, need: []string{"stun"}},
	{from: goAt(symmetric), to: goAt(symmetric), turn: true, need: []string{"turn"}},
	{from: goAt(cone), to: goAt(symmetric), turn: true, need: []string{"turn"}},
	{from: goAt(symmetric), to: goAt(cone), turn: true, need: []string{"turn"}},
	{from: goAt(public), to: goAt(udpBlocked), turn: true, need: []string{"turn"}},
	{from: goAt(cone), to: goAt(udpBlocked), turn: true, need: []string{"turn"}},
	{from: goAt(cone), to: pageAt(cone), turn: true, need: []string{"stun"}},
	{from: goAt(public), to: pageAt(udpBlocked), turn: true, need: []string{"turn"}},
	{from: pageAt(symmetric), to: goAt(cone), turn: true, need: []string{"turn"}},
	{from: pageAt(cone), to: pageAt(symmetric), turn: true, need: []string{"turn"}},
	{from: goAt(public), to: pageAt(udpBlocked), iceTCP: true, need: []string{"icetcp"}},
	{from: goAt(symmetric), to: goAt(symmetric), fail: true, need: []string{"exit5"}},
	{from: goAt(public), to: goAt(udpBlocked), fail: true, need: []string{"exit5"}},
	{from: pageAt(symmetric), to: pageAt(symmetric), fail: true},
}

// placed is a host of a cell and the address the internet sees it by.
type placed struct {
	*netlab.Host
	public netip.Addr
}

func place(lab *netlab.Lab, name string, at where) placed {
	switch at {
	case public:
		h := lab.PublicHost(name)
		return placed{h, h.Addr}
	case cone, udpBlocked:
		var opts []netlab.Option
		if at == udpBlocked {
			opts = append(opts, netlab.DropUDP())
		}
		r := lab.Router(name+"-nat", netlab.Cone, opts...)
		return placed{r.Host(name), r.Public}
	case symmetric:
		r := lab.Router(name+"-nat", netlab.Symmetric)
		return placed{r.Host(name), r.Public}
	}
	panic("unknown place " + at)
}

// result is one row of the matrix as printed.
type result struct {
	cell
	status string        // ok, FAIL or skip
	took   time.Duration // whole `get` process, or the page's fetch call
	exit   int           // get's exit code (native getters)
	direct uint64        // bytes between the peers' public addresses
	relay  uint64        // bytes from the mediator's host to the getter's public address
	note   string
}

// path says how the bytes went, from the internet router's counters.
func (r *result) path() string {
	switch {
	case r.direct >= fileSize/2 && r.relay >= fileSize/2:
		return "both"
	case r.direct >= fileSize/2:
		return "direct"
	case r.relay >= fileSize/2:
		return "relayed"
	}
	return "-"
}

func TestNATMatrix(t *testing.T) {
	netlab.Run(t, func(t *testing.T, lab *netlab.Lab) {
		feats := probe(t)
		t.Logf("p2pcdn offers: TURN %v, STUN %v, get exit code 5 %v, seed ICE-TCP %v", feats.turn, feats.stun, feats.exit5, feats.iceTCP)

		type setup struct {
			med           *netlab.Host
			src, dst      placed
			direct, relay *netlab.Counter
		}
		setups := make([]setup, len(matrix))
		for i, c := range matrix {
			s := &setups[i]
			s.med = lab.PublicHost(fmt.Sprintf("c%02d-med", i))
			s.src = place(lab, fmt.Sprintf("c%02d-src", i), c.from.at)
			s.dst = place(lab, fmt.Sprintf("c%02d-dst", i), c.to.at)
			s.direct = lab.Count(s.src.public, s.dst.public)
			s.relay = lab.Count(s.med.Addr, s.dst.public)
		}

		results := make([]*result, len(matrix))
		start := time.Now()
		t.Run("cells", func(t *testing.T) {
			for i, c := range matrix {
				res := &result{cell: c, exit: -1}
				results[i] = res
				t.Run(c.String(), func(t *testing.T) {
					t.Parallel()
					defer func() {
						switch {
						case t.Skipped():
							res.status = "skip"
						case t.Failed():
							res.status = "FAIL"
						default:
							res.status = "ok"
						}
						var err error
						if res.direct, err = setups[i].direct.Bytes(); err != nil {
							t.Error(err)
						}
						if res.relay, err = setups[i].relay.Bytes(); err != nil {
							t.Error(err)
						}
					}()
					s := setups[i]
					runCell(t, feats, c, s.med, s.src, s.dst, res)
					if !t.Failed() && !c.fail && c.relayOnly() {
						// Checked after the transfer: a direct path here would mean the lab is wrong.
						d, _ := s.direct.Bytes()
						if d >= fileSize/2 {
							t.Errorf("%d bytes went directly between %s and %s, which no direct path joins", d, s.src.public, s.dst.public)
						}
					}
				})
			}
		})
		t.Logf("NAT matrix (%d cells, up to %s at once, %v in all; time is the whole `get` process, or a page's fetch call; path from the internet router's counters):\n%s",
			len(matrix), flag.Lookup("test.parallel").Value, time.Since(start).Round(100*time.Millisecond), table(results))
	})
}

// runCell runs one cell and records what happened in res.
func runCell(t *testing.T, feats features, c cell, medHost *netlab.Host, src, dst placed, res *result) {
	if m := feats.missing(c.need); m != "" && os.Getenv("P2PCDN_NAT_ALL") == "" {
		res.note = "needs " + m
		t.Skipf("this build lacks %s", m)
	}
	var medFlags []string
	if c.turn && feats.turn {
		medFlags = append(medFlags, "--turn")
	}
	med := startMediator(t, medHost, medFlags...)

	var hash, sum string
	switch c.from.kind {
	case "go":
		var extra []string
		if c.iceTCP {
			extra = append(extra, "--ice-tcp-listen", src.Addr.String()+":8443")
		}
		hash, sum = startSeeder(t, src.Host, med, extra...)
	case "page":
		hash, sum = openPage(t, src.Host, med).seed(t)
	}

	switch c.to.kind {
	case "go":
		timeout := getTimeout
		if c.fail {
			timeout = failTimeout.String()
		}
		r := runGet(t, dst.Host, med, hash, timeout)
		res.took, res.exit = r.took, r.code
		switch {
		case c.fail && r.code != 5:
			t.Errorf("get exited %d after %v, want 5 (peers found, none connected); stderr:\n%s", r.code, r.took, r.stderr)
		case c.fail && r.took >= failTimeout*3/4:
			t.Errorf("get gave up after %v, not well before its --timeout %v", r.took, failTimeout)
		case c.fail:
			res.note = "gave up: " + lastLine(r.stderr)
		case r.code != 0:
			t.Errorf("get exited %d after %v; stderr:\n%s", r.code, r.took, r.stderr)
		case r.sum != sum:
			t.Errorf("get wrote a file whose SHA-256 is %s, want %s", r.sum, sum)
		}
	case "page":
		got, took, err := openPage(t, dst.Host, med).fetch(t, hash)
		res.took = took
		switch {
		case c.fail && (err == nil || !strings.Contains(err.Error(), "ICE failed")):
			t.Errorf("fetch ended after %v with %v, want an error saying ICE failed with the peers found", took, err)
		case c.fail && took >= failTimeout*3/4:
			t.Errorf("fetch gave up after %v, not well before its timeout %v", took, failTimeout)
		case c.fail:
			res.note = "gave up: " + strings.TrimPrefix(err.Error(), "page: ")
		case err != nil:
			t.Errorf("fetch failed after %v: %v", took, err)
		case got != sum:
			t.Errorf("the page fetched bytes whose SHA-256 is %s, want %s", got, sum)
		}
	}
}

// lastLine is the last line of a process's output.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// table formats the matrix for the test log.
func table(results []*result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-48s %-6s %9s %-8s %12s %12s  %s\n", "cell", "result", "time", "path", "direct B", "via relay B", "note")
	for _, r := range results {
		if r.status == "" {
			continue // not selected by -run
		}
		took := "-"
		if r.took > 0 {
			took = r.took.Round(10 * time.Millisecond).String()
		}
		note := r.note
		if r.exit > 0 {
			note = strings.TrimSpace(fmt.Sprintf("exit %d; %s", r.exit, note))
		}
		fmt.Fprintf(&b, "%-48s %-6s %9s %-8s %12d %12d  %s\n", r.cell, r.status, took, r.path(), r.direct, r.relay, note)
	}
	return b.String()
}

func TestParseFeatures(t *testing.T) {
	old := parseFeatures("   --listen ADDRESS  ...\n   --no-dht  ...",
		"   Exit status: 0 complete and verified, 2 bad arguments, 3 no peers found in time, 4 verification failed, 1 anything else.\n   --timeout DURATION  (default: 5s)",
		"   --ice-server URL ...")
	if old != (features{}) {
		t.Errorf("features of a build without them: %+v", old)
	}
	now := parseFeatures("   --turn  relay ...\n   --no-stun  ...",
		"   Exit status: 0 complete and verified, 2 bad arguments, 3 no peers found in time, 4 verification failed, 5 peers found but none could be connected, 1 anything else.",
		"   --ice-tcp-listen ADDR  also accept WebRTC over TCP")
	if now != (features{turn: true, stun: true, exit5: true, iceTCP: true}) {
		t.Errorf("features of a build with them: %+v", now)
	}
}

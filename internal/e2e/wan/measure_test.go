package wan

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/testing/netlab"
)

// Environment of TestWANMeasure (see doc.go).
const (
	envMeasure = "P2PCDN_WAN_MEASURE" // directory for the results; unset: the test skips
	envRTTs    = "P2PCDN_WAN_RTTS"    // comma-separated round-trip times
	envRuns    = "P2PCDN_WAN_RUNS"    // runs per row
	envRows    = "P2PCDN_WAN_ROWS"    // comma-separated row keys (get1m, get100k, page1m); default all
)

// Measured is what TestWANMeasure writes for one round-trip time, as wan-<rtt>.json; bench/ reads it.
type Measured struct {
	RTTMS    float64       `json:"rtt_ms"`
	Rows     []MeasuredRow `json:"rows"`
	Timeline string        `json:"timeline,omitempty"` // `get --verbose`'s timeline of the last 1 MB get
}

// MeasuredRow is one row: the figures in milliseconds, run by run, and the baseline's, interleaved.
type MeasuredRow struct {
	Key      string    `json:"key"`
	Name     string    `json:"name"`
	BaseName string    `json:"base_name"`
	Got      []float64 `json:"got_ms"`
	Base     []float64 `json:"base_ms"`
}

func TestWANMeasure(t *testing.T) {
	dir := os.Getenv(envMeasure)
	if dir == "" {
		t.Skipf("measures only with %s=DIR (see the package doc)", envMeasure)
	}
	rtts, err := parseRTTs(os.Getenv(envRTTs))
	if err != nil {
		t.Fatal(err)
	}
	runs := 5
	if v := os.Getenv(envRuns); v != "" {
		if runs, err = strconv.Atoi(v); err != nil || runs < 1 {
			t.Fatalf("%s=%q: want a positive number", envRuns, v)
		}
	}
	want := map[string]bool{"get1m": true, "get100k": true, "page1m": true}
	if v := os.Getenv(envRows); v != "" {
		want = map[string]bool{}
		for _, k := range strings.Split(v, ",") {
			want[strings.TrimSpace(k)] = true
		}
	}
	for _, rtt := range rtts {
		t.Run("rtt="+rtt.String(), func(t *testing.T) {
			netlab.Run(t, func(t *testing.T, lab *netlab.Lab) {
				m := measure(t, lab, rtt, runs, want)
				data, err := json.MarshalIndent(m, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				out := filepath.Join(dir, fmt.Sprintf("wan-%dms.json", rtt.Milliseconds()))
				if err := os.WriteFile(out, data, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s", out)
			})
		})
	}
}

func parseRTTs(s string) ([]time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		s = "20ms,80ms,200ms"
	}
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d <= 0 || d > 2*time.Second {
			return nil, fmt.Errorf("%s: %q is not a round-trip time up to 2s", envRTTs, f)
		}
		out = append(out, d)
	}
	return out, nil
}

// measure times each wanted row runs times against its baseline, alternating which goes first.
func measure(t *testing.T, lab *netlab.Lab, rtt time.Duration, runs int, want map[string]bool) Measured {
	r := newRig(t, lab, rtt, map[string]int64{"one.bin": 1e6, "small.bin": 100e3})
	m := Measured{RTTMS: float64(rtt) / float64(time.Millisecond)}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	debug := os.Getenv("P2PCDN_WAN_DEBUG") != ""
	// One untimed get warms the page cache, the mediator and the seeder.
	r.get(t, r.hashes["small.bin"])

	getRow := func(key, name, file string) {
		row := MeasuredRow{Key: key, Name: "p2pcdn get " + name + ", whole process",
			BaseName: "curl of the same file over HTTP from the seeder's host, whole process"}
		for i := range runs {
			for j := range 2 {
				if (i+j)%2 == 0 {
					g := r.get(t, r.hashes[file])
					if g.sum != r.sums[file] {
						t.Fatalf("get %s wrote other bytes", file)
					}
					row.Got = append(row.Got, ms(g.took))
					if debug {
						t.Logf("get %s at %v: %v; stderr:\n%s", file, rtt, g.took, g.stderr)
					}
					if file == "one.bin" {
						m.Timeline = timelineOf(g.stderr)
					}
				} else {
					took, sum := r.curl(t, file)
					if sum != r.sums[file] {
						t.Fatalf("curl %s wrote other bytes", file)
					}
					row.Base = append(row.Base, ms(took))
				}
			}
		}
		t.Logf("%s at %v: got %v, base %v", name, rtt, row.Got, row.Base)
		m.Rows = append(m.Rows, row)
	}
	if want["get1m"] {
		getRow("get1m", "1 MB", "one.bin")
	}
	if want["get100k"] {
		getRow("get100k", "100 KB", "small.bin")
	}
	if want["page1m"] {
		row := MeasuredRow{Key: "page1m", Name: "page fetch of 1 MB by hash, page already connected to its mediator, call to blob",
			BaseName: "the same page's fetch() of the file over HTTP from the seeder's host, new connection"}
		b := r.browser(t)
		// A first page compiles the library and warms the browser, untimed.
		warm := b.openPage(t)
		warm.fetchHash(t, r.hashes["small.bin"])
		warm.close()
		for i := range runs {
			// A fresh tab each run: no connection to the seeder survives from the last.
			p := b.openPage(t)
			for j := range 2 {
				if (i+j)%2 == 0 {
					drops := 0
					if debug {
						drops = r.udpDrops(t)
					}
					took, sum := p.fetchHash(t, r.hashes["one.bin"])
					if sum != r.sums["one.bin"] {
						t.Fatal("page fetch wrote other bytes")
					}
					if debug {
						t.Logf("page fetch at %v: %v, %d datagrams dropped at the far host's sockets", rtt, took, r.udpDrops(t)-drops)
					}
					row.Got = append(row.Got, ms(took))
				} else {
					took, sum := p.fetchHTTP(t, r.httpBase+"one.bin?run="+strconv.Itoa(i))
					if sum != r.sums["one.bin"] {
						t.Fatal("page HTTP fetch gave other bytes")
					}
					row.Base = append(row.Base, ms(took))
				}
			}
			p.close()
		}
		t.Logf("page 1 MB at %v: got %v, base %v", rtt, row.Got, row.Base)
		if debug {
			for _, line := range strings.Split(r.seeder.Stderr(), "\n") {
				if strings.Contains(line, "pacing") {
					t.Logf("seeder: %s", line)
				}
			}
		}
		m.Rows = append(m.Rows, row)
	}
	return m
}

// timelineOf picks `get --verbose`'s timeline lines out of its stderr.
func timelineOf(stderr string) string {
	var b strings.Builder
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, "timeline") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

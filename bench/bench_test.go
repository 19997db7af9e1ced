package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		in               []float64
		median, min, max float64
	}{
		{[]float64{3}, 3, 3, 3},
		{[]float64{5, 1, 3}, 3, 1, 5},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
	} {
		s := summarize(c.in)
		if s.median != c.median || s.min != c.min || s.max != c.max || s.n != len(c.in) {
			t.Errorf("summarize(%v) = %+v, want median %v min %v max %v", c.in, s, c.median, c.min, c.max)
		}
	}
	if s := summarize(nil); s.n != 0 {
		t.Errorf("summarize(nil) = %+v", s)
	}
}

func TestRatioSaysWhichSideWins(t *testing.T) {
	for _, c := range []struct {
		r    row
		want string
	}{
		{row{unit: unitMS, got: []float64{200}, base: []float64{100}}, "2.00× (worse)"},
		{row{unit: unitMS, got: []float64{50}, base: []float64{100}}, "0.50× (better)"},
		{row{unit: unitMiBs, got: []float64{200}, base: []float64{100}}, "2.00× (better)"},
		{row{unit: unitMiBs, got: []float64{101}, base: []float64{100}}, "1.01× (even)"},
		{row{unit: unitMiBs, got: nil, base: []float64{100}}, "–"},
	} {
		if got := ratio(c.r); got != c.want {
			t.Errorf("ratio(%v vs %v %s) = %q, want %q", c.r.got, c.r.base, c.r.unit.name, got, c.want)
		}
	}
}

func TestWriteTableMarksUnmeasuredRows(t *testing.T) {
	var b bytes.Buffer
	writeTable(&b, []row{
		{group: "G", name: "a", unit: unitMS, got: []float64{1, 2, 3}, baseName: "base", base: []float64{1}},
		{group: "G", name: "b", note: "not measured: because"},
	})
	out := b.String()
	for _, want := range []string{"### G", "| a | 2.00 ms (1.00–3.00, n=3) | base | 1.00 ms (n=1) | 2.00× (worse) |", "| b | not measured: because |"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

const mediatorOutput = `
target    peers answers/s/core  events/s/core     p50 ms     p99 ms RSS KiB/peer  live KiB/peer
go         1000          31081          62162       0.53       1.37        34.70          20.10
node       1000          12778          25556       0.15       0.24        29.40              -

ratios go/node: answers/s/core 2.43x, p99 latency 5.71x, memory per peer 1.18x
`

func TestParseMediatorTable(t *testing.T) {
	res, err := parseMediatorTable([]byte(mediatorOutput))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]mediatorResult{
		"go":   {eventsPerCore: 62162, p99: 1.37, kibPerPeer: 34.7},
		"node": {eventsPerCore: 25556, p99: 0.24, kibPerPeer: 29.4},
	}
	for k, w := range want {
		if res[k] != w {
			t.Errorf("%s: got %+v, want %+v", k, res[k], w)
		}
	}
	if _, err := parseMediatorTable([]byte("nothing here\n")); err == nil {
		t.Error("no error for output without a table")
	}
}

// FuzzParseMediatorTable: the other program's output must never panic the parser.
func FuzzParseMediatorTable(f *testing.F) {
	f.Add([]byte(mediatorOutput))
	f.Add([]byte("target ms ms\ngo 1 2\n"))
	f.Add([]byte("target\ngo\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseMediatorTable(data)
	})
}

func TestSeedLine(t *testing.T) {
	for _, line := range []string{
		"0123456789abcdef0123456789abcdef01234567     1000000  /tmp/x/lat-1000000.bin",
		"0123456789abcdef0123456789abcdef01234567  976.6 KiB  /tmp/x/lat-1000000.bin",
		"0123456789abcdef0123456789abcdef01234567        7 B  /tmp/x/lat-1000000.bin",
	} {
		m := seedLine.FindStringSubmatch(line)
		if m == nil || m[1] != "0123456789abcdef0123456789abcdef01234567" || m[3] != "/tmp/x/lat-1000000.bin" {
			t.Fatalf("seedLine on %q = %q", line, m)
		}
	}
	if seedLine.MatchString("    p2pcdn get --mediator ws://127.0.0.1:1 0123456789abcdef0123456789abcdef01234567") {
		t.Error("the hint line matched as a file line")
	}
}

func TestSizeName(t *testing.T) {
	for n, want := range map[int64]string{1e3: "1 KB", 1e6: "1 MB", 10e6: "10 MB", 64 << 20: "64 MiB", 1 << 30: "1 GiB", 7: "7 B"} {
		if got := sizeName(n); got != want {
			t.Errorf("sizeName(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestRawPionProcs runs the two-process raw pion baseline on loopback: the
// receiver must count every byte, and both children's CPU is measured.
func TestRawPionProcs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	self := buildBench(t)
	b := &bench{log: slog.New(slog.DiscardHandler), self: self, env: os.Environ()}
	const size = 4<<20 + 123 // not a multiple of the message size
	res, err := b.rawPionProcs(ctx, size)
	if err != nil {
		t.Fatal(err)
	}
	if res.wall <= 0 || res.cpu <= 0 {
		t.Fatalf("transfer took %v and %v of CPU", res.wall, res.cpu)
	}
}

// buildBench builds this program, whose child modes the baselines run.
func buildBench(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "bench")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestDaemonReadyAndStop starts a child that prints lines in one burst, as
// `p2pcdn seed` does; no line may be lost before the ready condition holds.
func TestDaemonReadyAndStop(t *testing.T) {
	b := &bench{log: slog.New(slog.DiscardHandler)}
	var seen []string
	d, _, err := b.startDaemon(context.Background(), func(l string) bool {
		seen = append(seen, l)
		return len(seen) == 3
	}, "sh", "-c", "printf 'a\\nb\\nc\\n'; exec sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, ",") != "a,b,c" {
		t.Fatalf("saw %q", seen)
	}
	d.stop()
	d.stop() // idempotent
	if _, _, err := b.startDaemon(context.Background(), func(string) bool { return false }, "sh", "-c", "echo x; echo broken >&2; exit 3"); err == nil ||
		!strings.Contains(err.Error(), "broken") {
		t.Fatalf("a child that exits early: err = %v, want its stderr", err)
	}
}

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
	"github.com/p2pcdn/p2pcdn/internal/testenv"
)

// bin is the p2pcdn binary under test, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithP2PCDN(m, "e2e", &bin))
}

// Generous bounds: the machine may be busy with other tests. They guard
// against hangs, they do not measure speed.
const (
	startTimeout = 60 * time.Second
	runTimeout   = 3 * time.Minute
)

// proc is one running p2pcdn process, owned by the test that started it.
type proc = testenv.Proc

// start runs p2pcdn with args in dir ("" = a fresh temporary directory).
func start(t testing.TB, name, dir string, args ...string) *proc {
	t.Helper()
	return testenv.StartProc(t, name, bin, dir, args...)
}

var listeningRE = regexp.MustCompile(`mediator listening.* addr=(\S+)`)

// mediator is a standalone `p2pcdn mediator` process.
type mediator struct {
	*proc
	addr string // host:port it listens on
}

// startMediator starts a mediator on addr ("127.0.0.1:0" for any free port)
// and waits until it listens.
func startMediator(t testing.TB, addr string) *mediator {
	t.Helper()
	// The DHT node gets its own free UDP port: by default it takes the
	// TCP port's number, which another process may hold over UDP.
	p := start(t, "mediator", "", "mediator", "--listen", addr, "--dht-listen", "127.0.0.1:0")
	m := p.WaitOutput(listeningRE, startTimeout)
	return &mediator{proc: p, addr: m[1]}
}

// url is the mediator's address as peers are given it.
func (m *mediator) url() string { return "ws://" + m.addr }

// seeder is a `p2pcdn seed --json` process and the files it serves.
type seeder struct {
	*proc
	infos []*content.Info
}

var seedingRE = regexp.MustCompile(`seeding (\d+) file\(s\)`)

// startSeeder seeds paths through m and waits until every file is announced.
func startSeeder(t testing.TB, m *mediator, extra []string, paths ...string) *seeder {
	t.Helper()
	args := append([]string{"seed", "--json", "--no-cache", "--ice-loopback", "--mediator", m.url()}, extra...)
	p := start(t, "seeder", "", append(args, paths...)...)
	n, _ := strconv.Atoi(p.WaitOutput(seedingRE, startTimeout)[1])
	// stdout and stderr are copied by separate goroutines: the dictionaries,
	// printed first, may still be on their way.
	deadline := time.Now().Add(startTimeout)
	for strings.Count(p.Stdout(), "\n") < n {
		if time.Now().After(deadline) {
			t.Fatalf("seeder announced %d files but printed %q", n, p.Stdout())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s := &seeder{proc: p}
	sc := bufio.NewScanner(strings.NewReader(p.Stdout()))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		info, err := content.ParseInfo(sc.Bytes())
		if err != nil {
			t.Fatalf("seeder printed a bad info dictionary %q: %v", sc.Text(), err)
		}
		s.infos = append(s.infos, info)
	}
	if len(s.infos) != n {
		t.Fatalf("seeder announced %d files but printed %d dictionaries", n, len(s.infos))
	}
	return s
}

// info returns the dictionary of the seeded file named name.
func (s *seeder) info(name string) *content.Info {
	s.T().Helper()
	for _, in := range s.infos {
		if in.FileName == name {
			return in
		}
	}
	s.T().Fatalf("seeder does not serve %q (it serves %d files)", name, len(s.infos))
	return nil
}

// summary is what `p2pcdn get --json` prints.
type summary struct {
	FullHash    string `json:"full_hash"`
	FileName    string `json:"file_name"`
	Path        string `json:"path"`
	TotalLength int64  `json:"total_length"`
	Downloaded  int64  `json:"downloaded"`
	Uploaded    int64  `json:"uploaded"`
	Resumed     int64  `json:"resumed"` // bytes
	// ResumedPieces counts the pieces those bytes are in.
	ResumedPieces int    `json:"resumed_pieces"`
	Peers         int    `json:"peers"`
	ElapsedMS     *int64 `json:"elapsed_ms"`
	AlreadyThere  bool   `json:"already_there"`
}

// startGet starts `p2pcdn get --json` through m in dir.
func startGet(t testing.TB, m *mediator, dir string, args ...string) *proc {
	t.Helper()
	return start(t, "get", dir, append([]string{"get", "--json", "--ice-loopback", "--mediator", m.url()}, args...)...)
}

// runGet runs `p2pcdn get --json` to its end and returns its exit code and,
// on success, its summary.
func runGet(t testing.TB, m *mediator, dir string, args ...string) (int, *summary, *proc) {
	t.Helper()
	p := startGet(t, m, dir, args...)
	code := p.Wait(runTimeout)
	if code != 0 {
		return code, nil, p
	}
	return 0, parseSummary(t, p), p
}

func parseSummary(t testing.TB, p *proc) *summary {
	t.Helper()
	var s summary
	dec := json.NewDecoder(strings.NewReader(p.Stdout()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("get --json printed %q: %v", p.Stdout(), err)
	}
	if dec.More() {
		t.Fatalf("get --json printed more than one summary: %q", p.Stdout())
	}
	return &s
}

// writeRandom writes size pseudo-random bytes, derived from seed, to path.
func writeRandom(t testing.TB, path string, size int64, seed uint64) {
	testenv.WriteRandom(t, path, size, seed)
}

// sameFile fails the test unless the files at a and b hold the same bytes.
func sameFile(t testing.TB, a, b string) {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	var off int64
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			t.Fatalf("%s and %s differ in the MiB at offset %d", a, b, off)
		}
		off += int64(na)
		endA := errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF)
		endB := errors.Is(eb, io.EOF) || errors.Is(eb, io.ErrUnexpectedEOF)
		if ea != nil && !endA || eb != nil && !endB {
			t.Fatalf("compare %s and %s: %v %v", a, b, ea, eb)
		}
		if endA || endB {
			if endA != endB {
				t.Fatalf("%s and %s differ in length", a, b)
			}
			return
		}
	}
}

// waitPiecesSaved waits until the download of finalPath has recorded at
// least one verified piece on disk: its state file, first written when the
// download opens, has been replaced by a later save (saves happen only when
// pieces are verified). It fails if the download finishes first.
func waitPiecesSaved(t testing.TB, get *proc, finalPath string) {
	t.Helper()
	statePath := finalPath + ".part.state"
	deadline := time.Now().Add(runTimeout)
	for {
		if statePiecesSaved(statePath) {
			return
		}
		if _, err := os.Stat(finalPath); err == nil || get.Exited() {
			t.Fatalf("the download ended before it could be interrupted (too fast for this test: use a bigger file); stderr:\n%s",
				get.Stderr())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no piece of %s saved within %s", finalPath, runTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// statePiecesSaved reports whether the download state file at path claims
// at least one piece. The state is written (empty) when the download starts,
// so its mere presence says nothing. Its layout (internal/store): an 8-byte
// magic, the 20-byte full hash, three integers (8+8+4 bytes), the bitfield
// of saved pieces, an 8-byte checksum.
func statePiecesSaved(path string) bool {
	data, err := os.ReadFile(path)
	const head, tail = 8 + 20 + 8 + 8 + 4, 8
	if err != nil || len(data) <= head+tail {
		return false
	}
	for _, b := range data[head : len(data)-tail] {
		if b != 0 {
			return true
		}
	}
	return false
}

package netlab

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envInside names the test that the current process runs inside its lab; envMode is P2PCDN_NETLAB.
const (
	envInside = "P2PCDN_NETLAB_INSIDE"
	envMode   = "P2PCDN_NETLAB"
)

// Run runs fn with a fresh Lab. The calling test (or subtest) is re-executed in a new process inside
// fresh network, mount and PID namespaces, where fn runs; in the calling process Run waits for it, copies
// its output into the test log and fails or skips the test as it did. When the lab cannot be built (not
// root, tools missing) Run skips the test, saying why, unless P2PCDN_NETLAB=require. Call it at most once
// per test.
func Run(t *testing.T, fn func(t *testing.T, lab *Lab)) {
	t.Helper()
	if os.Getenv(envInside) == t.Name() {
		fn(t, newLab(t))
		return
	}
	if why := unavailable(); why != "" {
		if os.Getenv(envMode) == "require" {
			t.Fatalf("netlab: %s (and %s=require)", why, envMode)
		}
		t.Skipf("netlab: skipped: %s", why)
	}
	reexec(t)
}

// unavailable says why no lab can be built here, or "" when one can.
func unavailable() string {
	if runtime.GOOS != "linux" {
		return "network namespaces need Linux"
	}
	if os.Geteuid() != 0 {
		return fmt.Sprintf("creating network namespaces needs root (running as uid %d)", os.Geteuid())
	}
	for _, tool := range []struct{ name, pkg string }{{"unshare", "util-linux"}, {"ip", "iproute2"}, {"nft", "nftables"}} {
		if _, err := exec.LookPath(tool.name); err != nil {
			return fmt.Sprintf("%s is not installed (apt-get install %s)", tool.name, tool.pkg)
		}
	}
	if out, err := exec.Command("unshare", "--net", "--mount", "--pid", "--fork", "true").CombinedOutput(); err != nil {
		return fmt.Sprintf("unshare --net --mount --pid failed (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// runPattern is the -test.run value that selects exactly the test named name (and, below it, the
// subtests the outer -test.run selected).
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	if f := flag.Lookup("test.run"); f != nil {
		if outer := strings.Split(f.Value.String(), "/"); len(outer) > len(parts) {
			parts = append(parts, outer[len(parts):]...)
		}
	}
	return strings.Join(parts, "/")
}

// reexec runs the test binary, limited to t, inside new namespaces and reports its outcome on t.
func reexec(t *testing.T) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("netlab: finding the test binary: %v", err)
	}
	args := []string{
		// --kill-child with --pid: when unshare dies, its child (PID 1 of the new PID namespace) is
		// killed, and with it every process of the lab.
		"--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
		exe, "-test.run=" + runPattern(t.Name()), "-test.v=true", "-test.count=1",
	}
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "test.skip", "test.parallel", "test.failfast":
			args = append(args, "-"+f.Name+"="+f.Value.String())
		}
	})
	if testing.Short() {
		args = append(args, "-test.short=true")
	}
	timeout := time.Duration(0)
	if d, ok := t.Deadline(); ok {
		// Leave the outer process time to report the inner one's timeout panic.
		timeout = time.Until(d) * 9 / 10
		args = append(args, "-test.timeout="+timeout.String())
	}

	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), envInside+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	cmd.Stderr = cmd.Stdout

	// Pdeathsig fires when the thread that started the child exits, so that thread stays ours (and
	// alive) until the child has been waited for.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		t.Fatalf("netlab: starting the lab: %v", err)
	}
	res := relay(t, out)
	err = cmd.Wait()
	switch {
	case res.noTests:
		t.Fatalf("netlab: the lab ran no test for -test.run=%s", runPattern(t.Name()))
	case err != nil:
		t.Fatalf("netlab: the test failed inside its lab (%v); its output is above", err)
	case res.skipped:
		t.Skip("netlab: the test skipped inside its lab; its output is above")
	}
}

type relayResult struct {
	skipped, noTests bool
}

// relay copies the inner test's output into the test log and notes how it ended.
func relay(t *testing.T, r io.Reader) relayResult {
	var res relayResult
	w := t.Output()
	skipLine := "--- SKIP: " + t.Name() + " ("
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimLeft(line, " "), skipLine) {
			res.skipped = true
		}
		if strings.HasPrefix(line, "testing: warning: no tests to run") {
			res.noTests = true
		}
		fmt.Fprintln(w, line)
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		fmt.Fprintf(w, "netlab: reading the lab's output: %v\n", err)
		_, _ = io.Copy(io.Discard, r)
	}
	return res
}

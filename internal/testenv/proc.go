package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// BuildBinary builds the Go package pkg (an import path) into a new temporary directory and returns the
// executable's path and a cleanup that removes the directory. It takes no testing.TB because TestMain, which
// builds once for a whole package, has none.
func BuildBinary(pkg string) (path string, cleanup func(), err error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", nil, fmt.Errorf("the go command is needed to build %s: %w", pkg, err)
	}
	dir, err := os.MkdirTemp("", "p2pcdn-bin-")
	if err != nil {
		return "", nil, fmt.Errorf("temporary directory for %s: %w", pkg, err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	path = filepath.Join(dir, filepath.Base(pkg))
	if out, err := exec.Command(gobin, "build", "-o", path, pkg).CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("building %s: %w\n%s", pkg, err, out)
	}
	return path, cleanup, nil
}

// P2PCDN returns the p2pcdn binary for end-to-end tests: $P2PCDN_E2E_BIN when set (a prebuilt binary, for
// quick reruns), else a fresh build of cmd/p2pcdn. The cleanup removes what was built.
func P2PCDN() (path string, cleanup func(), err error) {
	if b := os.Getenv("P2PCDN_E2E_BIN"); b != "" {
		return b, func() {}, nil
	}
	return BuildBinary("github.com/p2pcdn/p2pcdn/cmd/p2pcdn")
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Proc is one running child process. The test that started it owns it: a cleanup kills it if the test did not
// wait for it, and logs its stderr if the test failed.
type Proc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	stdout lockedBuffer
	stderr lockedBuffer
	done   chan struct{}
	err    error // valid after done
}

// IsolatedEnv is the environment for a p2pcdn process: no inherited P2PCDN_ settings, and a private home and
// cache so the user's hash cache stays untouched.
func IsolatedEnv(t testing.TB) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "P2PCDN_") || strings.HasPrefix(kv, "XDG_CACHE_HOME=") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		out = append(out, kv)
	}
	home := t.TempDir()
	return append(out, "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, "cache"))
}

// StartProc runs bin with args in dir ("" = a fresh temporary directory) and the IsolatedEnv; name labels it
// in failure messages.
func StartProc(t testing.TB, name, bin, dir string, args ...string) *Proc {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	p := &Proc{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = IsolatedEnv(t)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s (%s) stderr:\n%s", name, strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// T is the test that owns the process.
func (p *Proc) T() testing.TB { return p.t }

// Name is the label given to StartProc.
func (p *Proc) Name() string { return p.name }

// Stdout is what the process has printed on stdout so far.
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr is what the process has printed on stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Err is the process's exit error, valid once Exited reports true.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill ends the process with SIGKILL (no goodbye) and waits for it.
func (p *Proc) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Wait waits for the process to exit by itself and returns its exit code; it kills the process and fails the
// test after timeout.
func (p *Proc) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
		p.t.Fatalf("%s did not exit within %s; stderr:\n%s", p.name, timeout, p.stderr.String())
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	default:
		p.t.Fatalf("%s: %v", p.name, p.err)
		return -1
	}
}

// WaitOutput waits until re matches the process's stderr and returns the match's submatches. It fails the
// test if the process exits first or timeout passes.
func (p *Proc) WaitOutput(re *regexp.Regexp, timeout time.Duration) []string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(p.stderr.String()); m != nil {
			return m
		}
		if p.Exited() {
			p.t.Fatalf("%s exited (%v) before printing %q; stderr:\n%s", p.name, p.err, re, p.stderr.String())
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not print %q within %s; stderr:\n%s", p.name, re, timeout, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RunWithP2PCDN runs an end-to-end package's tests (call it from TestMain) with the p2pcdn binary of
// P2PCDN in *bin. It also exports the binary as $P2PCDN_E2E_BIN: a lab that re-executes the test binary
// in its namespaces inherits the environment and so reuses this build.
func RunWithP2PCDN(m *testing.M, pkg string, bin *string) int {
	b, cleanup, err := P2PCDN()
	if err != nil {
		fmt.Fprintln(os.Stderr, pkg+":", err)
		return 1
	}
	defer cleanup()
	*bin = b
	os.Setenv("P2PCDN_E2E_BIN", b)
	return m.Run()
}

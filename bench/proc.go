package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// run is one finished child process.
type run struct {
	wall   time.Duration
	cpu    time.Duration // user + system
	maxRSS int64         // bytes
	stdout []byte
}

// runTimed runs a command to completion and measures it from start to exit.
func (b *bench) runTimed(ctx context.Context, name string, args ...string) (run, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = b.env
	var out bytes.Buffer
	errb := &limited{n: 64 << 10}
	cmd.Stdout, cmd.Stderr = &out, errb
	t0 := time.Now()
	err := cmd.Run()
	r := run{wall: time.Since(t0), stdout: out.Bytes()}
	if cmd.ProcessState != nil {
		r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss * 1024
		}
	}
	if err != nil {
		return r, fmt.Errorf("%s %s: %w: %s", shortName(name), strings.Join(args, " "), err, lastLine(errb.String()))
	}
	return r, nil
}

// daemon is a long-running child (mediator, seeder, tracker) that the bench
// stops itself; stop is safe to call more than once.
type daemon struct {
	name     string
	cmd      *exec.Cmd
	done     chan struct{} // stdout drained
	waited   chan struct{} // process reaped
	stderr   *limited
	stopping atomic.Bool
}

// startDaemon starts a child and waits until ready accepts one of its stdout
// lines (nil: do not wait). The rest of stdout is drained by a goroutine that
// ends when the child does.
func (b *bench) startDaemon(ctx context.Context, ready func(line string) bool, name string, args ...string) (*daemon, []string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = b.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphans if the bench dies
	// An own pipe rather than StdoutPipe: Wait runs concurrently (below)
	// and must not close the reading end before every line is read.
	stdout, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout = pw
	d := &daemon{name: shortName(name) + " " + strings.Join(args, " "), cmd: cmd, done: make(chan struct{}), waited: make(chan struct{}), stderr: &limited{n: 64 << 10}}
	cmd.Stderr = d.stderr
	err = cmd.Start()
	pw.Close() // the child holds its own copy
	if err != nil {
		stdout.Close()
		return nil, nil, fmt.Errorf("start %s: %w", d.name, err)
	}
	b.daemons = append(b.daemons, d)
	// The waiter reports a child that dies before the bench stops it: the
	// usual cause of a later "connection refused".
	go func() {
		err := cmd.Wait()
		if !d.stopping.Load() {
			b.log.Warn("child exited unexpectedly", "cmd", d.name, "err", err, "stderr", lastLine(d.stderr.String()))
		}
		close(d.waited)
	}()
	lines := make(chan string)
	waiting := make(chan struct{}) // closed when startDaemon stops reading lines
	defer close(waiting)
	go func() {
		defer close(d.done)
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-waiting: // nobody reads any more: drop
			}
		}
		io.Copy(io.Discard, stdout)
		stdout.Close()
	}()
	if ready == nil {
		return d, nil, nil
	}
	var got []string
	timeout := time.NewTimer(5 * time.Minute)
	defer timeout.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				d.stop()
				return nil, got, fmt.Errorf("%s exited before it was ready: %s", d.name, lastLine(d.stderr.String()))
			}
			got = append(got, line)
			if ready(line) {
				return d, got, nil
			}
		case <-timeout.C:
			d.stop()
			return nil, got, fmt.Errorf("%s not ready after 5 minutes", d.name)
		case <-ctx.Done():
			d.stop()
			return nil, got, ctx.Err()
		}
	}
}

// stop interrupts the child, waits for it (killing it after 15 s) and
// returns its resource usage.
func (d *daemon) stop() run {
	if d.stopping.Swap(true) {
		<-d.waited
		<-d.done
		return d.usage()
	}
	d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.waited:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.waited
	}
	<-d.done
	return d.usage()
}

func (d *daemon) usage() run {
	var r run
	if ps := d.cmd.ProcessState; ps != nil {
		r.cpu = ps.UserTime() + ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss * 1024
		}
	}
	return r
}

// cpu reads the child's CPU time so far from /proc.
func (d *daemon) cpu() (time.Duration, error) {
	return procCPU(d.cmd.Process.Pid)
}

func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const userHZ = 100
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// limited keeps at most n bytes of a child's stderr for error messages.
type limited struct {
	mu sync.Mutex
	b  bytes.Buffer
	n  int
}

func (l *limited) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limited) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return "(no output on stderr)"
	}
	return s
}

func shortName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

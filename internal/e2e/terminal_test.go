package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/p2pcdn/p2pcdn/internal/testenv"
)

// openPTY returns a new pseudo-terminal: the side the test reads, and the
// side a child writes to as its terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("cannot unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("no pseudo-terminal number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("cannot open the pseudo-terminal: %v", err)
	}
	unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 120})
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// TestGetStatusOnTerminal: on a terminal, get shows what it is doing while
// it looks for peers, on one line redrawn in place; then it clears it and
// prints its error alone.
func TestGetStatusOnTerminal(t *testing.T) {
	t.Parallel()
	m := startMediator(t, "127.0.0.1:0")
	master, slave := openPTY(t)
	hash := "0123456789abcdef0123456789abcdef01234567"
	cmd := exec.Command(bin, "get", "--ice-loopback", "--mediator", m.url(), "--timeout", "2s", hash)
	cmd.Dir = t.TempDir()
	cmd.Env = testenv.IsolatedEnv(t)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	var (
		mu  sync.Mutex
		out bytes.Buffer
	)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil { // EOF, or EIO once the child and the test closed their ends
				return
			}
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(runTimeout):
		cmd.Process.Kill()
		t.Fatal("get did not exit")
	}
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Errorf("get exited %d, want 3", code)
	}
	time.Sleep(100 * time.Millisecond) // the last bytes through the terminal
	mu.Lock()
	screen := out.String()
	mu.Unlock()
	if !strings.Contains(screen, "\r"+hash[:12]+"…: looking for peers…") {
		t.Errorf("the terminal showed no status line while looking for peers:\n%q", screen)
	}
	if !strings.Contains(screen, "\r\x1b[Kp2pcdn: no peers found in time") {
		t.Errorf("the status line was not cleared before the error:\n%q", screen)
	}
}

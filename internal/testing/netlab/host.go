package netlab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/p2pcdn/p2pcdn/internal/testenv"
)

// node is what hosts and routers share: a network namespace of their own.
type node struct {
	Name string
	ns   string
}

// Namespace is the node's network namespace name, for `ip netns exec`.
func (n *node) Namespace() string { return n.ns }

// Command is exec.Command for a program run in the node's network namespace.
func (n *node) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.ns, name}, args...)...)
}

// CommandContext is exec.CommandContext for a program run in the node's network namespace.
func (n *node) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.ns, name}, args...)...)
}

// Do runs fn on an OS thread that has joined the node's network namespace. Sockets fn creates belong to
// the namespace for their whole life, whichever goroutine uses them later. fn must not start goroutines
// that create sockets: they would run in the test's own namespace.
func (n *node) Do(fn func() error) error { return inNetns(n.ns, fn) }

// Host is a machine on the lab's network: a public host, or one behind a Router.
type Host struct {
	node
	Addr netip.Addr // its only address (besides loopback)
}

// Start runs bin with args in the host's namespace through testenv.StartProc: in dir ("" = a fresh
// temporary directory), with testenv's isolated environment, killed when t ends.
func (h *Host) Start(t testing.TB, name, bin, dir string, args ...string) *testenv.Proc {
	t.Helper()
	return testenv.StartProc(t, name, "ip", dir, append([]string{"netns", "exec", h.ns, bin}, args...)...)
}

// DialContext connects from the host to addr, as net.Dialer.DialContext does.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen listens on the host, as net.Listen does.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket listens on the host, as net.ListenPacket does.
func (h *Host) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := h.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// HTTPClient is an HTTP client whose connections start from the host.
func (h *Host) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: h.DialContext, DisableKeepAlives: true}}
}

// inNetns runs fn on a locked OS thread that has joined the named network namespace, and returns the
// thread to the process's namespace afterwards. A thread that cannot go back is never unlocked, so the
// runtime ends it with its goroutine instead of reusing it.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("opening this thread's network namespace: %w", err)
			return
		}
		defer unix.Close(back)
		target, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("opening network namespace %s: %w", name, err)
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("joining network namespace %s: %w", name, err)
			return
		}
		err = fn()
		if unix.Setns(back, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

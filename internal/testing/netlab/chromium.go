package netlab

import (
	"os/exec"
	"syscall"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// Chromium starts headless Chromium in the host's network namespace, for chromedp, as chromium.New
// does (with the same options); it is stopped when t ends. chromedp talks to it over the DevTools pipe
// (file descriptors the browser inherits), which no network namespace stands in the way of; everything
// the browser sends goes out of the host. Host names resolve to nothing, so pages are loaded by IP address.
func (h *Host) Chromium(t testing.TB, opts ...chromium.Option) *chromium.Browser {
	t.Helper()
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	inHost := chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
		cmd.Args = append([]string{"ip", "netns", "exec", h.ns, cmd.Path}, cmd.Args[1:]...)
		cmd.Path = ipPath
		// `ip netns exec` execs the browser, so this reaches the browser itself.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	})
	// The loopback-only rules map every name, IP literals included, to nothing but 127.0.0.1; the lab's
	// addresses are let through as well.
	rules := chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE 203.0.113.* , EXCLUDE 198.51.100.* , EXCLUDE 192.0.2.*")
	return chromium.New(t, append(opts, chromium.WithAllocatorOptions(inHost, rules))...)
}

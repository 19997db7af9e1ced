package launch

import "testing"

func TestPath(t *testing.T) {
	t.Setenv("P2PCDN_CHROMIUM", "")
	if got := Path("/opt/chromium"); got != "/opt/chromium" {
		t.Errorf("Path without P2PCDN_CHROMIUM = %q, want the fallback", got)
	}
	t.Setenv("P2PCDN_CHROMIUM", "/custom/chromium")
	if got := Path("/opt/chromium"); got != "/custom/chromium" {
		t.Errorf("Path with P2PCDN_CHROMIUM = %q, want /custom/chromium", got)
	}
}

func TestAllocatorOptionsKeepLoopback(t *testing.T) {
	// The list is opaque functions; its length guards against a flag being dropped by accident.
	if n := len(AllocatorOptions(DefaultPath, t.TempDir())); n < 20 {
		t.Errorf("AllocatorOptions has %d options, want the full loopback-only set", n)
	}
}

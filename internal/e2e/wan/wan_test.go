package wan

import (
	"strings"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/testing/netlab"
)

// testRTT is the round trip of the behaviour tests: long enough that every exchange is seen to wait for
// it, short enough to keep the tests quick.
const testRTT = 80 * time.Millisecond

// TestGetAcrossWAN fetches a 1 MB and a 100 KB file with whole `p2pcdn get` processes on a host 80 ms
// away from the seeder and its mediator, and checks the bytes.
func TestGetAcrossWAN(t *testing.T) {
	netlab.Run(t, func(t *testing.T, lab *netlab.Lab) {
		r := newRig(t, lab, testRTT, map[string]int64{"one.bin": 1e6, "small.bin": 100e3})
		for _, name := range []string{"one.bin", "small.bin"} {
			g := r.get(t, r.hashes[name])
			if g.sum != r.sums[name] {
				t.Fatalf("get %s wrote other bytes than the seeder's", name)
			}
			tl := timelineOf(g.stderr)
			t.Logf("get %s across %v: %v\n%s", name, testRTT, g.took.Round(time.Millisecond), tl)
			// --verbose shows where the time went, from the mediator to the last piece.
			for _, step := range []string{"mediator: TCP connected", "mediator: established", "rtc: ICE connected",
				"rtc: data channel open", "bt: handshake received", "bt: first block received", "bt: complete"} {
				if !strings.Contains(tl, step) {
					t.Errorf("get --verbose's timeline lacks %q", step)
				}
			}
			if g.took < 2*testRTT {
				t.Errorf("get %s took %v, less than two round trips of %v: is the delay line in the path?", name, g.took, testRTT)
			}
		}
	})
}

// TestPageAcrossWAN fetches 1 MB by hash in a page on a host 80 ms away from the seeder and its
// mediator, and the same file over HTTP, and checks the bytes.
func TestPageAcrossWAN(t *testing.T) {
	netlab.Run(t, func(t *testing.T, lab *netlab.Lab) {
		r := newRig(t, lab, testRTT, map[string]int64{"one.bin": 1e6})
		b := r.browser(t)
		p := b.openPage(t)
		defer p.close()
		drops := r.udpDrops(t)
		took, sum := p.fetchHash(t, r.hashes["one.bin"])
		t.Logf("UDP datagrams the far host dropped for want of socket buffer: %d", r.udpDrops(t)-drops)
		if sum != r.sums["one.bin"] {
			t.Fatal("the page's p2pcdn fetch gave other bytes than the seeder's")
		}
		t.Logf("page fetch of 1 MB by hash across %v: %v", testRTT, took.Round(time.Millisecond))
		took, sum = p.fetchHTTP(t, r.httpBase+"one.bin")
		if sum != r.sums["one.bin"] {
			t.Fatal("the page's HTTP fetch gave other bytes than the file's")
		}
		t.Logf("page fetch() of 1 MB over HTTP across %v: %v", testRTT, took.Round(time.Millisecond))
	})
}

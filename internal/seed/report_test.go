package seed

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/peering"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
)

// TestFailureReportRateLimited: one line per ReportEvery, the failures in between counted in the next.
func TestFailureReportRateLimited(t *testing.T) {
	var lines []string
	now := time.Unix(1000, 0)
	r := &failureReport{notice: func(s string) { lines = append(lines, s) }, now: func() time.Time { return now }}
	ice := &rtc.ICEError{Local: 1, Remote: 1}
	peer := "0123456789abcdef0123456789abcdef01234567"
	r.failed("a.png", peering.Failure{Peer: peer, Err: ice})
	for range 5 {
		now = now.Add(time.Second)
		r.failed("a.png", peering.Failure{Peer: peer, Err: errors.New("no answer")})
	}
	now = now.Add(ReportEvery)
	r.failed("b.png", peering.Failure{Peer: peer, Initiator: true, Err: errors.New("no connection within 15s")})
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %q", len(lines), lines)
	}
	for _, want := range []string{"could not connect to a downloader of a.png (peer 01234567)", "ICE failed",
		"no STUN or TURN server was configured", "--turn"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("first line %q does not say %q", lines[0], want)
		}
	}
	if want := "could not connect to a peer of b.png (peer 01234567): no connection within 15s (5 more failed attempt(s) since the last such line)"; lines[1] != want {
		t.Errorf("second line %q\nwant %q", lines[1], want)
	}
	(&failureReport{}).failed("x", peering.Failure{Err: ice}) // no Notice: nothing to do
}

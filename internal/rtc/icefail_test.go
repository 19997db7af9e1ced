package rtc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcdn/p2pcdn/internal/testing/simnet"
)

func TestCandidateKinds(t *testing.T) {
	var k CandidateKinds
	if k.String() != "no candidates" {
		t.Errorf("empty: %q", k)
	}
	for _, line := range []string{
		"candidate:1 1 udp 2122260223 192.0.2.2 40000 typ host",
		"a=candidate:2 1 udp 1686052607 203.0.113.10 5000 typ srflx raddr 192.0.2.2 rport 40000",
		"candidate:3 1 tcp 1518280447 192.0.2.2 9 typ host tcptype active",
		"candidate:4 1 udp 16777215 203.0.113.1 6000 typ relay raddr 0.0.0.0 rport 0",
		"candidate:garbage",
	} {
		k |= candidateKind(line)
	}
	if want := "host/udp, host/tcp, srflx/udp, relay/udp"; k.String() != want {
		t.Errorf("kinds %q, want %q", k, want)
	}
	if fromServers != kindBit("srflx", "udp")|kindBit("srflx", "tcp")|kindBit("relay", "udp")|kindBit("relay", "tcp") {
		t.Errorf("fromServers is %s", fromServers)
	}
	if !k.Has("relay", "udp") || k.Has("relay", "tcp") || k.Has("prflx", "udp") || k.Has("bogus", "udp") {
		t.Errorf("Has on %q", k)
	}
	stunOn, turnOn := serverKinds([]webrtc.ICEServer{{URLs: []string{"stun:203.0.113.1:3478"}}})
	if !stunOn || turnOn {
		t.Errorf("stun only: %v %v", stunOn, turnOn)
	}
	if _, turnOn := serverKinds([]webrtc.ICEServer{simnet.TURN()}); !turnOn {
		t.Error("turn not seen")
	}
}

// TestICEWatch drives the failure rule with made-up statistics.
func TestICEWatch(t *testing.T) {
	pair := func(state webrtc.StatsICECandidatePairState, reqs uint64) webrtc.ICECandidatePairStats {
		return webrtc.ICECandidatePairStats{State: state, RequestsReceived: reqs}
	}
	failed := webrtc.StatsReport{"p": pair(webrtc.StatsICECandidatePairStateFailed, 0)}
	t0 := time.Unix(1000, 0)
	w := iceWatch{minWait: 2 * time.Second}
	if w.observe(failed, true, t0) {
		t.Fatal("failed before the remote description")
	}
	w.since = t0
	for _, tc := range []struct {
		at       time.Duration
		report   webrtc.StatsReport
		gathered bool
		want     bool
	}{
		{time.Second, failed, true, false},      // before minWait
		{3 * time.Second, failed, false, false}, // still gathering
		{3 * time.Second, failed, true, true},   // all failed, quiet since t0
		{3500 * time.Millisecond, webrtc.StatsReport{"p": pair(webrtc.StatsICECandidatePairStateFailed, 1)}, true, false}, // the remote's check arrived
		{4 * time.Second, webrtc.StatsReport{"p": pair(webrtc.StatsICECandidatePairStateFailed, 1)}, true, false},         // not quiet long enough
		{4600 * time.Millisecond, webrtc.StatsReport{"p": pair(webrtc.StatsICECandidatePairStateFailed, 1)}, true, true},
		{5 * time.Second, webrtc.StatsReport{"p": pair(webrtc.StatsICECandidatePairStateInProgress, 1)}, true, false},
	} {
		if got := w.observe(tc.report, tc.gathered, t0.Add(tc.at)); got != tc.want {
			t.Errorf("at %v: failed=%v, want %v", tc.at, got, tc.want)
		}
	}
	// No pair at all: the longer no-candidate wait.
	w = iceWatch{minWait: time.Second, since: t0}
	if w.observe(webrtc.StatsReport{}, true, t0.Add(2*time.Second)) {
		t.Error("no pairs: failed before iceNoCandidate")
	}
	if !w.observe(webrtc.StatsReport{}, true, t0.Add(iceNoCandidate)) {
		t.Error("no pairs: not failed after iceNoCandidate")
	}
}

// dialBoth connects a to b over in-memory signalling and returns both errors and how long the dial
// took.
func dialBoth(t *testing.T, a, b *Transport) (dialErr, acceptErr error, took time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	a2b, b2a := make(chan string, 64), make(chan string, 64)
	offers := make(chan string, 1)
	acc := make(chan error, 1)
	go func() {
		select {
		case o := <-offers:
			c, err := b.Accept(ctx, o, chanSend(b2a), a2b)
			if c != nil {
				c.Close()
			}
			acc <- err
		case <-ctx.Done():
			acc <- ctx.Err()
		}
	}()
	first := true
	send := func(ctx context.Context, s string) error {
		if first {
			first = false
			offers <- s
			return nil
		}
		return chanSend(a2b)(ctx, s)
	}
	start := time.Now()
	c, err := a.Dial(ctx, send, b2a)
	took = time.Since(start)
	if c != nil {
		c.Close()
	}
	return err, <-acc, took
}

// TestICEFailsFastBehindNATs: two peers behind NATs that no server helps give up within a few seconds
// (pion alone would wait for its checking timeout), and the error says what each side had.
func TestICEFailsFastBehindNATs(t *testing.T) {
	for _, tc := range []struct {
		name         string
		ka, kb       simnet.Kind
		servers      []webrtc.ICEServer
		local        string
		stun, turnOn bool
	}{
		{"cone-cone no servers", simnet.Cone, simnet.Cone, nil, "host/udp", false, false},
		{"symmetric-symmetric STUN only", simnet.Symmetric, simnet.Symmetric, []webrtc.ICEServer{simnet.STUN()}, "host/udp, srflx/udp", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := labTransports(t, tc.ka, tc.kb, tc.servers, Config{})
			dialErr, acceptErr, took := dialBoth(t, a, b)
			t.Logf("dial gave up after %v: %v", took.Round(time.Millisecond), dialErr)
			for side, err := range map[string]error{"dial": dialErr, "accept": acceptErr} {
				var ie *ICEError
				if !errors.As(err, &ie) || !errors.Is(err, ErrICEFailed) {
					t.Fatalf("%s: %v, want an *ICEError", side, err)
				}
				if ie.Local.String() != tc.local || ie.STUN != tc.stun || ie.TURN != tc.turnOn || ie.NoRemote {
					t.Errorf("%s: %+v (%v), want local %s, STUN %v, TURN %v", side, ie, ie, tc.local, tc.stun, tc.turnOn)
				}
				if !ie.Remote.Has("host", "udp") {
					t.Errorf("%s: remote kinds %s, want host/udp among them", side, ie.Remote)
				}
			}
			if took >= iceDisconnected+iceFailed {
				t.Errorf("dial took %v: the failure watch did not end it before pion's own timeout", took)
			}
			if !strings.Contains(dialErr.Error(), "ICE failed") {
				t.Errorf("message %q", dialErr)
			}
		})
	}
}

// TestICEFailsWithoutRemoteCandidates: an offer with no usable candidate, and no candidate trickled
// after it, ends the answerer's negotiation quickly (a slot taken by a bogus offer is freed).
func TestICEFailsWithoutRemoteCandidates(t *testing.T) {
	a := newTestTransport(t, Config{})
	b := newTestTransport(t, Config{})
	var offer string
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	dctx, stop := context.WithCancel(ctx)
	_, _ = a.Dial(dctx, func(_ context.Context, s string) error { offer = s; stop(); return nil }, nil)
	sig, err := ParseSignal(offer)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for line := range strings.Lines(sig.SDP) {
		if !strings.HasPrefix(line, "a=candidate:") {
			kept = append(kept, line)
		}
	}
	sig.SDP = strings.Join(kept, "")
	start := time.Now()
	_, err = b.Accept(ctx, sig.String(), func(context.Context, string) error { return nil }, make(chan string))
	var ie *ICEError
	if !errors.As(err, &ie) || !ie.NoRemote || ie.Remote != 0 || !ie.Local.Has("host", "udp") {
		t.Fatalf("Accept of a candidate-less offer: %v (%+v), want an *ICEError with no remote candidates", err, ie)
	}
	t.Logf("gave up after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

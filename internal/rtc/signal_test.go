package rtc

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSignal(t *testing.T) {
	good := []struct {
		in, typ, sdp, cand string
	}{
		{`{"type":"offer","sdp":"v=0\r\n"}`, "offer", "v=0\r\n", ""},
		{`{"type":"answer","sdp":"v=0"}`, "answer", "v=0", ""},
		{`{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5 typ host","sdpMLineIndex":0,"sdpMid":"0"}}`,
			"candidate", "", "candidate:1 1 udp 1 127.0.0.1 5 typ host"},
		{`{"candidate":{"candidate":"candidate:x","sdpMLineIndex":0,"sdpMid":"0"}}`, "candidate", "", "candidate:x"},
		{`{"renegotiate":true}`, "renegotiate", "", ""},
		{`{"transceiverRequest":{"kind":"video","init":{}}}`, "transceiverRequest", "", ""},
		{`{"type":"rollback"}`, "rollback", "", ""},
		{` {"type":"offer","sdp":"x","extra":1} `, "offer", "x", ""},
	}
	for _, g := range good {
		sig, err := ParseSignal(g.in)
		if err != nil {
			t.Errorf("ParseSignal(%s): %v", g.in, err)
			continue
		}
		if sig.Type != g.typ || sig.SDP != g.sdp {
			t.Errorf("ParseSignal(%s) = %+v", g.in, sig)
		}
		if g.cand != "" && (sig.Candidate == nil || sig.Candidate.Candidate != g.cand) {
			t.Errorf("ParseSignal(%s): candidate %+v", g.in, sig.Candidate)
		}
	}
	bad := []string{
		``, `null`, `"offer"`, `[]`, `123`, `{}`, `{"type":"offer"}`, `{"type":"answer","sdp":""}`,
		`{"type":5}`, `{"type":"offer","sdp":7}`, `{"type":"candidate"}`, `{"candidate":null}`,
		`{"candidate":"candidate:1"}`, `{"type":"offer","sdp":"x"`, `{"type":"offer","sdp":"x"} trailing`,
		`{"type":"offer","sdp":"` + strings.Repeat("a", MaxSignalSize) + `"}`,
	}
	for _, in := range bad {
		if sig, err := ParseSignal(in); !errors.Is(err, ErrBadSignal) {
			t.Errorf("ParseSignal(%.40q) = %+v, %v; want ErrBadSignal", in, sig, err)
		}
	}
}

func TestSignalRoundTrip(t *testing.T) {
	s := Signal{Type: "answer", SDP: "v=0\r\na=x\"y\r\n"}
	got, err := ParseSignal(s.String())
	if err != nil || got.Type != s.Type || got.SDP != s.SDP || got.Candidate != nil {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if want := `{"type":"answer","sdp":"v=0\r\na=x\"y\r\n"}`; s.String() != want {
		t.Errorf("encoding %s, want %s", s.String(), want)
	}
}

func TestFilterLoopbackSDP(t *testing.T) {
	sdp := "v=0\r\n" +
		"a=candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host\r\n" +
		"a=candidate:2 1 udp 2122260223 192.168.1.5 40001 typ host\r\n" +
		"a=candidate:3 1 udp 2122260223 abcd.local 40002 typ host\r\n" +
		"a=candidate:4 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n" +
		"a=candidate:5 1 udp 2122260223 ::1 40003 typ host\r\n" +
		"a=candidate:6 1 tcp 1518280447 192.168.1.5 9 typ host tcptype active\r\n" +
		"a=candidate:garbage\r\n" +
		"a=end-of-candidates\r\n"
	// ICE-TCP on loopback is kept (a seeder's --ice-tcp-listen), other addresses are not.
	want := "v=0\r\n" +
		"a=candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host\r\n" +
		"a=candidate:4 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n" +
		"a=end-of-candidates\r\n"
	if got := filterLoopbackSDP(sdp); got != want {
		t.Errorf("filterLoopbackSDP:\n%q\nwant\n%q", got, want)
	}
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{
		`{"type":"offer","sdp":"v=0\r\n"}`, `{"candidate":{"candidate":"candidate:x","sdpMLineIndex":0}}`,
		`{"renegotiate":true}`, `{"type":"candidate"}`, `[`, `{"type":"answer","sdp":""}`,
		`{"type":"offer","sdp":"a=candidate:1 1 udp 2122260223 192.0.2.7 5000 typ host\r\n","trickle":true,"p2pcdn":1}`,
		`{"type":"answer","sdp":"a=candidate:1 1 tcp 1 x 9 typ relay raddr 0.0.0.0 rport 0\n","p2pcdn":1e9}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := ParseSignal(s)
		// What the peer layer reads from a remote's SDP: where it comes from, and its candidate kinds.
		_ = FirstCandidateAddress(sig.SDP)
		if k := sdpCandidateKinds(sig.SDP); k.String() == "" {
			t.Fatal("empty kinds text")
		}
		if sig.P2PCDN < 0 || sig.P2PCDN > 1<<16 {
			t.Fatalf("extension level %d", sig.P2PCDN)
		}
		if err != nil {
			if !errors.Is(err, ErrBadSignal) {
				t.Fatalf("error not wrapping ErrBadSignal: %v", err)
			}
			return
		}
		switch sig.Type {
		case SignalOffer, SignalAnswer:
			if sig.SDP == "" {
				t.Fatal("offer/answer without SDP accepted")
			}
		case SignalCandidate:
			if sig.Candidate == nil {
				t.Fatal("candidate without candidate accepted")
			}
		case "":
			t.Fatal("signal without type accepted")
		}
	})
}

func FuzzFilterLoopbackSDP(f *testing.F) {
	f.Add("v=0\r\na=candidate:1 1 udp 2122260223 127.0.0.1 40000 typ host\r\n")
	f.Add("a=candidate:2 1 udp 2122260223 10.0.0.1 1 typ srflx raddr 0.0.0.0 rport 0\n")
	f.Add("a=candidate:\r\na=candidate:1 1 UDP 1 127.0.0.1 99999 typ host\r\n")
	f.Fuzz(func(t *testing.T, sdp string) {
		out := filterLoopbackSDP(sdp)
		if len(out) > len(sdp) {
			t.Fatal("filter grew the SDP")
		}
		for line := range strings.Lines(out) {
			if strings.HasPrefix(line, "a=candidate:") && !loopbackCandidate(line) {
				t.Fatalf("non-loopback candidate kept: %q", line)
			}
		}
	})
}

func TestSignalMarks(t *testing.T) {
	for _, tc := range []struct {
		in      string
		trickle bool
		level   int
	}{
		{`{"type":"offer","sdp":"x","trickle":true,"p2pcdn":1}`, true, 1},
		{`{"type":"offer","sdp":"x","trickle":true}`, true, 0},
		{`{"type":"answer","sdp":"x","p2pcdn":2}`, false, 2},
		{`{"type":"offer","sdp":"x"}`, false, 0},
		// Marks of the wrong type or range only leave the extension off.
		{`{"type":"offer","sdp":"x","trickle":"yes","p2pcdn":"1"}`, false, 0},
		{`{"type":"offer","sdp":"x","trickle":1,"p2pcdn":0.5}`, false, 0},
		{`{"type":"offer","sdp":"x","p2pcdn":1e300}`, false, 0},
	} {
		sig, err := ParseSignal(tc.in)
		if err != nil {
			t.Errorf("ParseSignal(%s): %v", tc.in, err)
			continue
		}
		if sig.Trickle != tc.trickle || sig.P2PCDN != tc.level || sig.Ours() != (tc.trickle || tc.level > 0) {
			t.Errorf("ParseSignal(%s): trickle %v, level %d", tc.in, sig.Trickle, sig.P2PCDN)
		}
	}
	s := Signal{Type: "offer", SDP: "x", Trickle: true, P2PCDN: ExtensionLevel}.String()
	if want := `{"type":"offer","sdp":"x","trickle":true,"p2pcdn":1}`; s != want {
		t.Errorf("encoding %s, want %s", s, want)
	}
}

func TestSignalRecvBuffer(t *testing.T) {
	for in, want := range map[string]int{
		`{"type":"offer","sdp":"x","p2pcdn":1,"rcvbuf":8388608}`: 8 << 20,
		`{"type":"answer","sdp":"x","rcvbuf":1}`:                 1,
		`{"type":"offer","sdp":"x"}`:                             0,
		// Nonsense is ignored: the sender is then paced as a browser.
		`{"type":"offer","sdp":"x","rcvbuf":-5}`:         0,
		`{"type":"offer","sdp":"x","rcvbuf":0.5}`:        0,
		`{"type":"offer","sdp":"x","rcvbuf":1e300}`:      0,
		`{"type":"offer","sdp":"x","rcvbuf":"big"}`:      0,
		`{"type":"offer","sdp":"x","rcvbuf":2147483648}`: 0,
	} {
		sig, err := ParseSignal(in)
		if err != nil {
			t.Errorf("ParseSignal(%s): %v", in, err)
			continue
		}
		if sig.RecvBuffer != want {
			t.Errorf("ParseSignal(%s): rcvbuf %d, want %d", in, sig.RecvBuffer, want)
		}
	}
	s := Signal{Type: "answer", SDP: "x", P2PCDN: ExtensionLevel, RecvBuffer: 425984}.String()
	if want := `{"type":"answer","sdp":"x","p2pcdn":1,"rcvbuf":425984}`; s != want {
		t.Errorf("encoding %s, want %s", s, want)
	}
}

func TestFirstCandidateAddress(t *testing.T) {
	for sdp, want := range map[string]string{
		"v=0\r\na=candidate:1 1 udp 2122260223 192.0.2.7 5000 typ host\r\na=candidate:2 1 udp 1 10.0.0.1 1 typ host\r\n": "192.0.2.7",
		"a=candidate:1 1 UDP 1 ABCD-1234.local 9 typ host\n":                                                             "abcd-1234.local",
		"v=0\r\na=candidate:short\r\n": "",
		"v=0\r\n":                      "",
	} {
		if got := FirstCandidateAddress(sdp); got != want {
			t.Errorf("FirstCandidateAddress(%q) = %q, want %q", sdp, got, want)
		}
	}
}

package socketio

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseEnginePacket(t *testing.T) {
	cases := []struct {
		in     string
		typ    byte
		data   string
		binary bool
		bad    bool
	}{
		{in: "2probe", typ: enginePing, data: "probe"},
		{in: "3", typ: enginePong},
		{in: `42["a"]`, typ: engineMessage, data: `2["a"]`},
		{in: "6", typ: engineNoop},
		{in: "bAQI=", typ: engineMessage, data: "AQI=", binary: true},
		{in: "", bad: true},
		{in: "7", bad: true},
		{in: "x", bad: true},
	}
	for _, tc := range cases {
		p, err := ParseEnginePacket(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseEnginePacket(%q) = %+v, want error", tc.in, p)
			}
			continue
		}
		if err != nil || p.Type != tc.typ || p.Data != tc.data || p.Binary != tc.binary {
			t.Errorf("ParseEnginePacket(%q) = %+v, %v", tc.in, p, err)
		}
	}
}

func TestSplitPayload(t *testing.T) {
	ps, err := SplitPayload("40\x1e42[\"a\",1]\x1e3", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 || ps[0].Data != "0" || ps[1].Data != `2["a",1]` || ps[2].Type != enginePong {
		t.Fatalf("got %+v", ps)
	}
	for _, bad := range []string{"", "40\x1e", "\x1e3", "4\x1e\x1e3", "9"} {
		if _, err := SplitPayload(bad, 0); err == nil {
			t.Errorf("SplitPayload(%q): want error", bad)
		}
	}
	if _, err := SplitPayload(strings.Repeat("6\x1e", 10)+"6", 10); err == nil {
		t.Error("SplitPayload over the packet limit: want error")
	}
	got := string(appendPayload(nil, [][]byte{[]byte("2"), []byte(`42["x"]`)}))
	if got != "2\x1e42[\"x\"]" {
		t.Errorf("appendPayload = %q", got)
	}
}

func TestParseSocketPacket(t *testing.T) {
	cases := []struct {
		in   string
		want SocketPacket
		bad  bool
	}{
		{in: "0", want: SocketPacket{Type: 0, Namespace: "/", AckID: -1}},
		{in: `0{"token":"x"}`, want: SocketPacket{Type: 0, Namespace: "/", AckID: -1, Data: json.RawMessage(`{"token":"x"}`)}},
		{in: "0/admin,", want: SocketPacket{Type: 0, Namespace: "/admin", AckID: -1}},
		{in: "1/admin", want: SocketPacket{Type: 1, Namespace: "/admin", AckID: -1}},
		{in: `2["hello",1]`, want: SocketPacket{Type: 2, Namespace: "/", AckID: -1, Data: json.RawMessage(`["hello",1]`)}},
		{in: `2/chat,13["hello"]`, want: SocketPacket{Type: 2, Namespace: "/chat", AckID: 13, Data: json.RawMessage(`["hello"]`)}},
		{in: `312[]`, want: SocketPacket{Type: 3, Namespace: "/", AckID: 12, Data: json.RawMessage(`[]`)}},
		{in: `51-["a",{"_placeholder":true,"num":0}]`, want: SocketPacket{Type: 5, Attachments: 1, Namespace: "/", AckID: -1, Data: json.RawMessage(`["a",{"_placeholder":true,"num":0}]`)}},
		{in: "", bad: true},
		{in: "9", bad: true},
		{in: `2["unterminated`, bad: true},
		{in: `5["no count"]`, bad: true},
		{in: "2" + strings.Repeat("1", 20) + "[]", bad: true},
		{in: "0/" + strings.Repeat("n", 300) + ",", bad: true},
	}
	for _, tc := range cases {
		p, err := ParseSocketPacket(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseSocketPacket(%q) = %+v, want error", tc.in, p)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSocketPacket(%q): %v", tc.in, err)
			continue
		}
		if p.Type != tc.want.Type || p.Attachments != tc.want.Attachments || p.Namespace != tc.want.Namespace ||
			p.AckID != tc.want.AckID || string(p.Data) != string(tc.want.Data) {
			t.Errorf("ParseSocketPacket(%q) = %+v, want %+v", tc.in, p, tc.want)
		}
	}
}

func TestParseEvent(t *testing.T) {
	ev, err := ParseEvent([]byte(`["signal","abc",{"x":1}]`))
	if err != nil || ev.Name != "signal" || len(ev.Args) != 2 || string(ev.Args[1]) != `{"x":1}` {
		t.Fatalf("got %+v, %v", ev, err)
	}
	for _, bad := range []string{``, `{}`, `[]`, `[1]`, `[null]`, `"x"`} {
		if _, err := ParseEvent([]byte(bad)); err == nil {
			t.Errorf("ParseEvent(%q): want error", bad)
		}
	}
}

func TestEncodeEventRoundTrip(t *testing.T) {
	b, err := encodeEvent("signal", []any{"h", "<sdp & more>", json.RawMessage(`{"a":[1,2]}`), 7})
	if err != nil {
		t.Fatal(err)
	}
	want := `42["signal","h","<sdp & more>",{"a":[1,2]},7]`
	if string(b) != want {
		t.Fatalf("encodeEvent = %s, want %s", b, want)
	}
	p, err := ParseEnginePacket(string(b))
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ParseSocketPacket(p.Data)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ParseEvent(sp.Data)
	if err != nil || ev.Name != "signal" || len(ev.Args) != 4 {
		t.Fatalf("round trip: %+v, %v", ev, err)
	}
	if _, err := encodeEvent("x", []any{make(chan int)}); err == nil {
		t.Error("encodeEvent of a channel: want error")
	}
}

func FuzzParseEnginePacket(f *testing.F) {
	for _, s := range []string{"0{}", "2probe", "3", `42["a"]`, "bAQI=", "6", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseEnginePacket(s)
		if err == nil && !p.Binary && string(p.Type)+p.Data != s {
			t.Fatalf("packet %q does not re-encode: %+v", s, p)
		}
	})
}

func FuzzSplitPayload(f *testing.F) {
	for _, s := range []string{"40\x1e42[\"a\"]", "3", "\x1e", "6\x1e6\x1e6", "bAA==\x1e2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := SplitPayload(s, 64)
		if err != nil {
			return
		}
		if len(ps) == 0 || len(ps) > 64 {
			t.Fatalf("SplitPayload(%q) gave %d packets", s, len(ps))
		}
	})
}

func FuzzParseSocketPacket(f *testing.F) {
	for _, s := range []string{"0", `0{"a":1}`, "0/admin,", "1", `2["a",1]`, `2/x,5["a"]`, `31[]`, `51-["a",{"_placeholder":true,"num":0}]`, `44{"message":"x"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseSocketPacket(s)
		if err != nil {
			return
		}
		if p.Type < 0 || p.Type > 6 || p.Namespace == "" || p.AckID < -1 || len(p.Namespace) > maxNamespaceLen {
			t.Fatalf("ParseSocketPacket(%q) = %+v", s, p)
		}
		if len(p.Data) > 0 && !json.Valid(p.Data) {
			t.Fatalf("invalid JSON accepted from %q", s)
		}
		if p.Type == socketEvent {
			_, _ = ParseEvent(p.Data)
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{`["a"]`, `["signal","h","p","{\"type\":\"offer\"}"]`, `[1]`, `{}`, `[`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ev, err := ParseEvent([]byte(s))
		if err != nil {
			return
		}
		b, err := encodeEvent(ev.Name, toAny(ev.Args))
		if err != nil {
			t.Fatalf("re-encode %q: %v", s, err)
		}
		sp, err := ParseSocketPacket(string(b[1:]))
		if err != nil {
			t.Fatalf("re-parse %s: %v", b, err)
		}
		ev2, err := ParseEvent(sp.Data)
		if err != nil || ev2.Name != ev.Name || len(ev2.Args) != len(ev.Args) {
			t.Fatalf("round trip of %q: %+v, %v", s, ev2, err)
		}
	})
}

func toAny(args []json.RawMessage) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = a
	}
	return out
}

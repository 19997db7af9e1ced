package mediation

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	hashA = "0123456789abcdef0123456789abcdef01234567"
	idA   = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB   = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// rawArgs splits a JSON array into raw arguments, as a Socket.IO transport
// hands them over.
func rawArgs(t testing.TB, js string) []json.RawMessage {
	t.Helper()
	var args []json.RawMessage
	if err := json.Unmarshal([]byte(js), &args); err != nil {
		t.Fatalf("bad test input %s: %v", js, err)
	}
	return args
}

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name string
		args string
		want Message
	}{
		{"handshake", `["` + idA + `",0]`, Handshake{ID: idA, Type: Mediation}},
		{"handshake", `["` + idA + `",1]`, Handshake{ID: idA, Type: Replication}},
		{"established", `[]`, Established{}},
		{"get_peers", `["` + hashA + `"]`, GetPeers{Hash: hashA}},
		{"announce", `["` + hashA + `"]`, Announce{Hash: hashA}},
		{"finish", `["` + hashA + `"]`, Finish{Hash: hashA}},
		{"peers", `["` + hashA + `",[]]`, Peers{Hash: hashA, IDs: []string{}}},
		{"peers", `["` + hashA + `",["` + idA + `","` + idB + `"]]`, Peers{Hash: hashA, IDs: []string{idA, idB}}},
		{"signal", `["` + hashA + `","` + idA + `","{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"}"]`,
			Signal{Hash: hashA, PeerID: idA, Data: "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\"}"}},
		{"signal", `["` + hashA + `","` + idA + idB + `","x"]`, Signal{Hash: hashA, PeerID: idA + idB, Data: "x"}},
		{"established", `[{"p2pcdn":1,"batch":1000,"ice_servers":[]}]`, Established{Caps: &Capabilities{P2PCDN: 1, Batch: 1000}}},
		{"announce_many", `[[]]`, AnnounceMany{Hashes: []string{}}},
		{"announce_many", `[["` + hashA + `"]]`, AnnounceMany{Hashes: []string{hashA}}},
		{"finish_many", `[ [ "` + hashA + `" ,` + "\n" + `"` + idA + `" ] ]`, FinishMany{Hashes: []string{hashA, idA}}},
		{"get_peers_many", `[["` + hashA + `","` + idB + `"]]`, GetPeersMany{Hashes: []string{hashA, idB}}},
		// Escaped characters take the general path and mean the same.
		{"get_peers_many", `[["\u0030123456789abcdef0123456789abcdef01234567"]]`, GetPeersMany{Hashes: []string{hashA}}},
	}
	for _, tt := range tests {
		got, err := Decode(tt.name, rawArgs(t, tt.args))
		if err != nil {
			t.Errorf("Decode(%s, %s): %v", tt.name, tt.args, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Decode(%s, %s) = %#v, want %#v", tt.name, tt.args, got, tt.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    string
		arg     int    // expected DecodeError.Arg
		message string // substring of the error
	}{
		{"get_peers", `[null]`, 1, "want a string, got null"},
		{"get_peers", `[]`, 0, "want 1 arguments, got 0"},
		{"get_peers", `["` + hashA + `","extra"]`, 0, "want 1 arguments, got 2"},
		{"get_peers", `[42]`, 1, "got a number"},
		{"get_peers", `[{"a":1}]`, 1, "got an object"},
		{"announce", `[["x"]]`, 1, "got an array"},
		{"finish", `[true]`, 1, "got a boolean"},
		{"announce", `["` + strings.ToUpper(hashA) + `"]`, 1, "40 lowercase hex"},
		{"announce", `["abc"]`, 1, "40 lowercase hex"},
		{"announce", `["` + hashA + `0"]`, 1, "40 lowercase hex"},
		{"handshake", `["` + idA + `"]`, 0, "want 2 arguments"},
		{"handshake", `["` + idA + `",2]`, 2, "want 0 or 1"},
		{"handshake", `["` + idA + `","0"]`, 2, "want 0 or 1, got a string"},
		{"handshake", `["` + idA + `",0.5]`, 2, "want 0 or 1"},
		{"handshake", `["zz` + idA[2:] + `",0]`, 1, "40 lowercase hex"},
		{"handshake", `[null,0]`, 1, "got null"},
		{"signal", `["` + hashA + `","` + idA + `",{"type":"offer"}]`, 3, "want a string, got an object"},
		{"signal", `["` + hashA + `","` + idA + `",""]`, 3, "empty"},
		{"signal", `["` + hashA + `","` + idA + `"]`, 0, "want 3 arguments"},
		{"signal", `["` + hashA + `","` + idA[:39] + `","x"]`, 2, "40 or 80"},
		{"signal", `["` + hashA + `","` + strings.Repeat("a", MaxSignalData+1) + `","x"]`, 2, "40 or 80"},
		{"signal", `["` + hashA + `","` + idA + `","` + strings.Repeat("a", MaxSignalData+1) + `"]`, 3, "more than"},
		{"peers", `["` + hashA + `",null]`, 2, "want an array, got null"},
		{"peers", `["` + hashA + `",[1]]`, 2, "element 0: want a string"},
		{"peers", `["` + hashA + `",["` + idA + `","nope"]]`, 2, "element 1"},
		{"established", `[1]`, 1, "want an object, got a number"},
		{"established", `[{},{}]`, 0, "want 0 or 1 arguments, got 2"},
		{"established", `[{"p2pcdn":1,"batch":"many"}]`, 1, "capabilities"},
		{"established", `[{"p2pcdn":1,"batch":-1}]`, 1, "batch: want at least 0"},
		{"announce_many", `["` + hashA + `"]`, 1, "want an array, got a string"},
		{"announce_many", `[]`, 0, "want 1 arguments"},
		{"finish_many", `[["` + hashA + `",1]]`, 1, "element 1: want a string"},
		{"get_peers_many", `[["` + strings.ToUpper(hashA) + `"]]`, 1, "element 0: want 40 lowercase hex"},
		{"get_peers_many", `[["` + strings.TrimSuffix(strings.Repeat(hashA+`","`, MaxBatch+1), `","`) + `"]]`, 1, "more than the 20000 allowed"},
		{"get_peers_many", `[["\u0030123456789abcdef0123456789abcdef01234567"` + strings.Repeat(`,"`+hashA+`"`, MaxBatch) + `]]`, 1, "more than the 20000 allowed"},
		{"established", `[{"p2pcdn":1},2]`, 0, "want 0 or 1 arguments"},
	}
	for _, tt := range tests {
		_, err := Decode(tt.name, rawArgs(t, tt.args))
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("Decode(%s, %.60s) error = %v, want a *DecodeError", tt.name, tt.args, err)
			continue
		}
		if de.Arg != tt.arg || !strings.Contains(err.Error(), tt.message) {
			t.Errorf("Decode(%s, %.60s) = %q (arg %d), want arg %d containing %q", tt.name, tt.args, err, de.Arg, tt.arg, tt.message)
		}
	}
}

func TestDecodeUnknownEvent(t *testing.T) {
	_, err := Decode("hello", nil)
	if !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("error = %v, want ErrUnknownEvent", err)
	}
	_, err = Decode(strings.Repeat("x", 10000), nil)
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("long name error not bounded: %d bytes", len(err.Error()))
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	msgs := []Message{
		Handshake{ID: idA, Type: Replication},
		Established{},
		GetPeers{Hash: hashA},
		Peers{Hash: hashA, IDs: []string{idA, idB}},
		Signal{Hash: hashA, PeerID: idB, Data: `{"type":"answer","sdp":"v=0"}`},
		Announce{Hash: hashA},
		Finish{Hash: hashA},
		Established{Caps: &Capabilities{P2PCDN: 1, Batch: 1000}},
		AnnounceMany{Hashes: []string{hashA, idA}},
		FinishMany{Hashes: []string{}},
		GetPeersMany{Hashes: []string{hashA}},
	}
	for _, m := range msgs {
		js, err := json.Marshal(m.Args())
		if err != nil {
			t.Fatal(err)
		}
		if m.Args() == nil {
			js = []byte("[]")
		}
		got, err := Decode(m.Event(), rawArgs(t, string(js)))
		if err != nil {
			t.Fatalf("%s: decode of own encoding %s: %v", m.Event(), js, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of %#v gave %#v", m, got)
		}
	}
}

func TestPeersNilEncodesEmptyList(t *testing.T) {
	js, _ := json.Marshal(Peers{Hash: hashA}.Args())
	if want := `["` + hashA + `",[]]`; string(js) != want {
		t.Fatalf("got %s, want %s", js, want)
	}
}

func TestWireFrames(t *testing.T) {
	// The frames of PROTOCOL.md section 5, as a transport would marshal them.
	tests := []struct {
		m    Message
		want string
	}{
		{Handshake{ID: idA}, `["handshake","` + idA + `",0]`},
		{Signal{Hash: hashA, PeerID: idA, Data: "d"}, `["signal","` + hashA + `","` + idA + `","d"]`},
	}
	for _, tt := range tests {
		js, _ := json.Marshal(append([]any{tt.m.Event()}, tt.m.Args()...))
		if string(js) != tt.want {
			t.Errorf("got %s, want %s", js, tt.want)
		}
	}
}

func TestSplitRelayID(t *testing.T) {
	from, to, ok := SplitRelayID(idA + idB)
	if !ok || from != idA || to != idB {
		t.Fatalf("SplitRelayID = %q %q %v", from, to, ok)
	}
	if _, _, ok := SplitRelayID(idA); ok {
		t.Fatal("40-char id split as a relay id")
	}
	if _, _, ok := SplitRelayID(idA + strings.ToUpper(idB)); ok {
		t.Fatal("uppercase relay id accepted")
	}
}

func FuzzDecode(f *testing.F) {
	seeds := []struct{ name, args string }{
		{"handshake", `["` + idA + `",0]`},
		{"get_peers", `[null]`},
		{"get_peers", `["` + hashA + `"]`},
		{"peers", `["` + hashA + `",["` + idA + `"]]`},
		{"signal", `["` + hashA + `","` + idA + idB + `","{\"type\":\"offer\"}"]`},
		{"announce", `[1e999]`},
		{"handshake", `["` + idA + `",-0]`},
		{"x", `[]`},
		{"established", `[{"p2pcdn":1,"batch":1000}]`},
		{"announce_many", `[["` + hashA + `","` + idA + `"]]`},
		{"get_peers_many", `[[ "` + hashA + `" ]]`},
		{"finish_many", `[["\u0030123456789abcdef0123456789abcdef01234567"]]`},
		{"established", `[{"p2pcdn":1,"batch":1000,"ice_servers":[{"urls":["stun:h:1"]},{"urls":["turn:h:1?transport=udp"],"username":"1:a","credential":"c"}],"ice_expires":1}]`},
		{"ice_servers", `[{"ice_servers":[{"urls":["stun:h:1"]}],"ice_expires":5}]`},
		{"get_ice_servers", `[]`},
	}
	for _, s := range seeds {
		f.Add(s.name, s.args)
	}
	f.Fuzz(func(t *testing.T, name, js string) {
		var args []json.RawMessage
		if json.Unmarshal([]byte(js), &args) != nil {
			return
		}
		m, err := Decode(name, args)
		if err != nil {
			if m != nil {
				t.Fatal("message and error both returned")
			}
			return
		}
		// Whatever decodes must encode to something that decodes the same.
		enc, err := json.Marshal(m.Args())
		if err != nil {
			t.Fatal(err)
		}
		if m.Args() == nil {
			enc = []byte("[]")
		}
		var args2 []json.RawMessage
		if err := json.Unmarshal(enc, &args2); err != nil {
			t.Fatal(err)
		}
		m2, err := Decode(m.Event(), args2)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", enc, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip %#v != %#v", m, m2)
		}
	})
}

// FuzzScanHashList checks the batch fast path against encoding/json: what it
// accepts must be exactly what the general path makes of the same bytes.
func FuzzScanHashList(f *testing.F) {
	f.Add(`["` + hashA + `"]`)
	f.Add(` [ "` + hashA + `" ,` + "\t" + `"` + idA + `" ] `)
	f.Add(`[]`)
	f.Add(`["` + hashA + `",]`)
	f.Fuzz(func(t *testing.T, js string) {
		hs, ok := scanHashList([]byte(js))
		if !ok || len(hs) > MaxBatch {
			return
		}
		var want []string
		if err := json.Unmarshal([]byte(js), &want); err != nil {
			t.Fatalf("fast path accepted %q, which is not JSON: %v", js, err)
		}
		if want == nil {
			want = []string{}
		}
		if !reflect.DeepEqual(hs, want) {
			t.Fatalf("fast path %q: %q, encoding/json %q", js, hs, want)
		}
		for _, h := range hs {
			if !ValidHash(h) {
				t.Fatalf("fast path accepted %q", h)
			}
		}
	})
}

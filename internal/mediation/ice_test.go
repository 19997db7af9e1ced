package mediation

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestEstablishedWithCapabilities(t *testing.T) {
	frame := `[{"p2pcdn":1,"batch":1000,"ice_servers":[{"urls":["stun:mediator.example:8888"]},` +
		`{"urls":["turn:mediator.example:8888?transport=udp","turn:mediator.example:8888?transport=tcp"],` +
		`"username":"1764460800:` + idA + `","credential":"kq3v"}],"ice_expires":1764460800,"future":true}]`
	m, err := Decode(EventEstablished, rawArgs(t, frame))
	if err != nil {
		t.Fatal(err)
	}
	want := Established{Caps: &Capabilities{
		P2PCDN: 1, Batch: 1000, ICEExpires: 1764460800,
		ICEServers: []ICEServer{
			{URLs: []string{"stun:mediator.example:8888"}},
			{URLs: []string{"turn:mediator.example:8888?transport=udp", "turn:mediator.example:8888?transport=tcp"},
				Username: "1764460800:" + idA, Credential: "kq3v"},
		},
	}}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %#v, want %#v", m, want)
	}
	// Our own encoding, as the mediator emits it.
	js, _ := json.Marshal(append([]any{m.Event()}, m.Args()...))
	if !strings.HasPrefix(string(js), `["established",{"p2pcdn":1,"batch":1000,"ice_servers":[{"urls":["stun:`) {
		t.Fatalf("encoding %s", js)
	}
	// Only the level: nothing else appears.
	js, _ = json.Marshal(Established{Caps: &Capabilities{P2PCDN: 1}}.Args())
	if string(js) != `[{"p2pcdn":1}]` {
		t.Fatalf("minimal encoding %s", js)
	}
}

func TestICEEventsRoundTrip(t *testing.T) {
	msgs := []Message{
		GetICEServers{},
		ICEServers{Servers: []ICEServer{{URLs: []string{"stun:h:1"}}}, Expires: 9},
		ICEServers{Servers: []ICEServer{}},
		Established{Caps: &Capabilities{P2PCDN: 1}},
	}
	for _, m := range msgs {
		js, _ := json.Marshal(m.Args())
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
	js, _ := json.Marshal(ICEServers{}.Args())
	if string(js) != `[{"ice_servers":[]}]` {
		t.Fatalf("empty answer encodes as %s", js)
	}
}

func TestICEDecodeErrors(t *testing.T) {
	long := strings.Repeat("x", MaxICEStringBytes+1)
	many := strings.Repeat(`{"urls":["stun:h:1"]},`, MaxICEServers) + `{"urls":["stun:h:1"]}`
	tests := []struct{ name, args, message string }{
		{"established", `[{}]`, "p2pcdn: want a level of at least 1"},
		{"established", `[{"p2pcdn":"1"}]`, "malformed"},
		{"established", `[{"p2pcdn":1,"batch":-1}]`, "batch"},
		{"established", `[{"p2pcdn":1,"ice_servers":[{"urls":"stun:h:1"}]}]`, "malformed"},
		{"established", `[{"p2pcdn":1,"ice_servers":[{"urls":[]}]}]`, "want 1 to 8 urls"},
		{"established", `[{"p2pcdn":1,"ice_servers":[` + many + `]}]`, "more than the 16 allowed"},
		{"established", `[{"p2pcdn":1,"ice_servers":[{"urls":[""]}]}]`, "urls[0]"},
		{"established", `[{"p2pcdn":1,"ice_servers":[{"urls":["` + long + `"]}]}]`, "urls[0]"},
		{"established", `[{"p2pcdn":1,"ice_servers":[{"urls":["a"],"credential":"` + long + `"}]}]`, "credential"},
		{"established", `[{"p2pcdn":1,"ice_expires":-5}]`, "ice_expires"},
		{"established", `[null]`, "want an object, got null"},
		{"get_ice_servers", `[1]`, "want 0 arguments"},
		{"ice_servers", `[]`, "want 1 arguments"},
		{"ice_servers", `[[]]`, "want an object, got an array"},
		{"ice_servers", `[{"ice_servers":[{"urls":[1]}]}]`, "malformed"},
	}
	for _, tt := range tests {
		_, err := Decode(tt.name, rawArgs(t, tt.args))
		var de *DecodeError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), tt.message) {
			t.Errorf("Decode(%s, %.70s) = %v, want a DecodeError containing %q", tt.name, tt.args, err, tt.message)
		}
	}
}

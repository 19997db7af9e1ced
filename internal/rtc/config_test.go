package rtc

import (
	"reflect"
	"testing"

	"github.com/pion/webrtc/v4"
)

func TestParseICEServers(t *testing.T) {
	// A raw comma splits entries, as documented: the password must escape it.
	if _, err := ParseICEServers("turn:u:p,w@turn.example.org:3478"); err == nil {
		t.Error("unescaped comma in a password accepted")
	}
	got, err := ParseICEServers("stun:stun.example.org:3478, turn:al%3Aice:p@ss%2Cw@turn.example.org:3478?transport=tcp,,turns:u:p@t.example.org")
	if err != nil {
		t.Fatal(err)
	}
	want := []webrtc.ICEServer{
		{URLs: []string{"stun:stun.example.org:3478"}},
		{URLs: []string{"turn:turn.example.org:3478?transport=tcp"}, Username: "al:ice", Credential: "p@ss,w",
			CredentialType: webrtc.ICECredentialTypePassword},
		{URLs: []string{"turns:t.example.org"}, Username: "u", Credential: "p", CredentialType: webrtc.ICECredentialTypePassword},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if s, err := ParseICEServers("  "); err != nil || s != nil {
		t.Errorf("empty: %v, %v", s, err)
	}
	for _, bad := range []string{"stun.example.org", "http://x", "turn:host:3478", "stun:u:p@host:3478",
		"turn:nopass@host", "turn:u:p@", "stun:", "turn:u:%zz@host", "foo:bar"} {
		if _, err := ParseICEServers(bad); err == nil {
			t.Errorf("ParseICEServers(%q) accepted", bad)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv(EnvICEServers, "stun:127.0.0.1:3478")
	t.Setenv(EnvICELoopback, "1")
	cfg, err := ConfigFromEnv(Config{SocketBuffer: 7})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Loopback || len(cfg.ICEServers) != 1 || cfg.SocketBuffer != 7 {
		t.Errorf("got %+v", cfg)
	}
	t.Setenv(EnvICELoopback, "maybe")
	if _, err := ConfigFromEnv(Config{}); err == nil {
		t.Error("bad loopback value accepted")
	}
	t.Setenv(EnvICELoopback, "")
	t.Setenv(EnvICEServers, "turn:host")
	if _, err := ConfigFromEnv(Config{}); err == nil {
		t.Error("bad ICE servers accepted")
	}
	t.Setenv(EnvICEServers, "")
	cfg, err = ConfigFromEnv(Config{ICEServers: []webrtc.ICEServer{{URLs: []string{"stun:a:1"}}}})
	if err != nil || cfg.Loopback || len(cfg.ICEServers) != 1 {
		t.Errorf("unset env changed the base: %+v, %v", cfg, err)
	}
}

func FuzzParseICEServers(f *testing.F) {
	f.Add("stun:host:3478,turn:u:p@host:3478?transport=udp")
	f.Add("turns:a%40b:c@h")
	f.Fuzz(func(t *testing.T, s string) {
		servers, err := ParseICEServers(s)
		if err != nil {
			return
		}
		for _, srv := range servers {
			if len(srv.URLs) != 1 || srv.URLs[0] == "" {
				t.Fatalf("bad server %+v", srv)
			}
		}
	})
}

package mediatorclient

import (
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/pion/webrtc/v4"
)

// FuzzParseCaps feeds established arguments from a hostile mediator: no
// panic, and every ICE server handed on is one pion accepts, since a single
// bad one would make every peer connection fail.
func FuzzParseCaps(f *testing.F) {
	for _, s := range []string{
		`{"p2pcdn":1,"batch":1000}`,
		`{"p2pcdn":1,"ice_servers":[{"urls":["stun:h:1"]},{"urls":["turn:h:1?transport=tcp"],"username":"1:a","credential":"c"}],"ice_expires":9}`,
		`{"p2pcdn":1,"ice_servers":[{"urls":["turn:h:1"]},{"urls":["http://x"]},{"urls":["stun:"]}]}`,
		`{"p2pcdn":0}`, `null`, `[]`, `"x"`, `{"p2pcdn":1,"batch":-3}`,
	} {
		f.Add([]byte(s))
	}
	api := webrtc.NewAPI()
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, arg []byte) {
		if !json.Valid(arg) {
			return // the transport hands on valid JSON only
		}
		c := parseCaps([]json.RawMessage{arg}, log)
		if c == nil {
			return
		}
		if c.batch < 0 || c.level < 1 {
			t.Fatalf("caps %+v", c)
		}
		if len(c.ice) == 0 {
			return
		}
		pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: c.ice})
		if err != nil {
			t.Fatalf("pion refuses servers we kept %+v: %v", c.ice, err)
		}
		pc.Close()
	})
}

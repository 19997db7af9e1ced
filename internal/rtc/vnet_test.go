package rtc

import (
	"testing"

	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcdn/p2pcdn/internal/testing/simnet"
)

// labTransports returns a Transport for each side of a simulated internet (internal/testing/simnet)
// with peers of kinds ka and kb, using servers.
func labTransports(tb testing.TB, ka, kb simnet.Kind, servers []webrtc.ICEServer, cfg Config) (*Transport, *Transport) {
	tb.Helper()
	lab := simnet.New(tb, ka, kb)
	mk := func(n transport.Net) *Transport {
		c := cfg
		c.ICEServers = servers
		c.Net = n
		if c.Logger == nil {
			c.Logger = quietLogger()
		}
		tr, err := New(c)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	return mk(lab.A), mk(lab.B)
}

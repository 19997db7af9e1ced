package rtc

import (
	"context"
	"testing"

	"github.com/pion/ice/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

// Connection setup: from creating the offer until the data channel is open on both sides, with
// instant in-memory signalling. Each scenario runs our Transport ("ours") and, as the same-run
// baseline, plain pion with default settings exchanging complete SDP ("pion"), which is how our peers
// connected before tuning. Loopback scenarios use 127.0.0.1 with a STUN/TURN server there; "nat"
// scenarios use the simulated internet of vnet_test.go (10 ms each way).
//
//	go test -run XXX -bench Setup -count 5 ./internal/rtc/

type setupScenario struct {
	name string
	// peers returns the two transports (ours) and the networks plus servers for the pion baseline.
	ours func(b *testing.B) (*Transport, *Transport)
	pion func(b *testing.B) (api1, api2 *webrtc.API, servers []webrtc.ICEServer)
}

func setupScenarios() []setupScenario {
	loop := func(name string, servers func(addr string) []webrtc.ICEServer) setupScenario {
		return setupScenario{
			name: "loopback-" + name,
			ours: func(b *testing.B) (*Transport, *Transport) {
				s := servers(startTURN(b))
				return newTestTransport(b, Config{ICEServers: s}), newTestTransport(b, Config{ICEServers: s})
			},
			pion: func(b *testing.B) (*webrtc.API, *webrtc.API, []webrtc.ICEServer) {
				api := plainPionAPI(false)
				return api, api, servers(startTURN(b))
			},
		}
	}
	lab := func(ka, kb natKind, servers []webrtc.ICEServer, what string) setupScenario {
		return setupScenario{
			name: "nat-" + ka.String() + "-" + kb.String() + "-" + what,
			ours: func(b *testing.B) (*Transport, *Transport) {
				return newVLab(b, ka, kb).transports(b, servers, Config{})
			},
			pion: func(b *testing.B) (*webrtc.API, *webrtc.API, []webrtc.ICEServer) {
				l := newVLab(b, ka, kb)
				return vnetPionAPI(l.a), vnetPionAPI(l.b), servers
			},
		}
	}
	none := func(string) []webrtc.ICEServer { return nil }
	stun := func(a string) []webrtc.ICEServer { return []webrtc.ICEServer{stunServer(a)} }
	turn := func(a string) []webrtc.ICEServer { return []webrtc.ICEServer{turnServer(a)} }
	return []setupScenario{
		loop("none", none),
		loop("stun", stun),
		loop("turn", turn),
		lab(public, cone, nil, "none"),
		lab(cone, cone, stun(labServer), "stun"),
		lab(symmetric, symmetric, turn(labServer), "turn"),
	}
}

func vnetPionAPI(n transport.Net) *webrtc.API {
	var se webrtc.SettingEngine
	se.SetNet(n)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

func BenchmarkSetup(b *testing.B) {
	for _, sc := range setupScenarios() {
		b.Run(sc.name+"/ours", func(b *testing.B) {
			x, y := sc.ours(b)
			b.ResetTimer()
			for range b.N {
				ca, cb := connect(b, x, y, nil)
				b.StopTimer()
				_ = ca.Close()
				_ = cb.Close()
				b.StartTimer()
			}
		})
		b.Run(sc.name+"/pion", func(b *testing.B) {
			api1, api2, servers := sc.pion(b)
			b.ResetTimer()
			for range b.N {
				p1, p2 := rawSetup(b, api1, api2, servers)
				b.StopTimer()
				_ = p1.GracefulClose()
				_ = p2.GracefulClose()
				b.StartTimer()
			}
		})
	}
}

func rawSetup(b *testing.B, api1, api2 *webrtc.API, servers []webrtc.ICEServer) (p1, p2 *webrtc.PeerConnection) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cfg := webrtc.Configuration{ICEServers: servers}
	p1, err := api1.NewPeerConnection(cfg)
	if err != nil {
		b.Fatal(err)
	}
	p2, err = api2.NewPeerConnection(cfg)
	if err != nil {
		b.Fatal(err)
	}
	dc, err := p1.CreateDataChannel("setup", nil)
	if err != nil {
		b.Fatal(err)
	}
	open1, open2 := make(chan struct{}), make(chan struct{})
	dc.OnOpen(func() { close(open1) })
	p2.OnDataChannel(func(d *webrtc.DataChannel) { d.OnOpen(func() { close(open2) }) })
	exchange := func(from, to *webrtc.PeerConnection, offer bool) {
		var desc webrtc.SessionDescription
		if offer {
			desc, err = from.CreateOffer(nil)
		} else {
			desc, err = from.CreateAnswer(nil)
		}
		if err != nil {
			b.Fatal(err)
		}
		g := webrtc.GatheringCompletePromise(from)
		if err := from.SetLocalDescription(desc); err != nil {
			b.Fatal(err)
		}
		<-g
		if err := to.SetRemoteDescription(*from.LocalDescription()); err != nil {
			b.Fatal(err)
		}
	}
	exchange(p1, p2, true)
	exchange(p2, p1, false)
	for _, ch := range []chan struct{}{open1, open2} {
		select {
		case <-ch:
		case <-ctx.Done():
			b.Fatal("channel did not open")
		}
	}
	return p1, p2
}

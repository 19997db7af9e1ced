package rtc

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcdn/p2pcdn/internal/testing/simnet"
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
	// lab, for NAT scenarios, returns our transports with cfg.
	lab  func(b *testing.B, cfg Config) (*Transport, *Transport)
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
	lab := func(ka, kb simnet.Kind, servers []webrtc.ICEServer, what string) setupScenario {
		return setupScenario{
			name: "nat-" + ka.String() + "-" + kb.String() + "-" + what,
			ours: func(b *testing.B) (*Transport, *Transport) {
				return labTransports(b, ka, kb, servers, Config{})
			},
			lab: func(b *testing.B, cfg Config) (*Transport, *Transport) {
				return labTransports(b, ka, kb, servers, cfg)
			},
			pion: func(b *testing.B) (*webrtc.API, *webrtc.API, []webrtc.ICEServer) {
				l := simnet.New(b, ka, kb)
				return vnetPionAPI(l.A), vnetPionAPI(l.B), servers
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
		lab(simnet.Public, simnet.Cone, nil, "none"),
		lab(simnet.Cone, simnet.Cone, []webrtc.ICEServer{simnet.STUN()}, "stun"),
		lab(simnet.Symmetric, simnet.Symmetric, []webrtc.ICEServer{simnet.TURN()}, "turn"),
		// A direct path exists, and so does the relay: it should not be taken.
		lab(simnet.Cone, simnet.Cone, []webrtc.ICEServer{simnet.TURN()}, "turn"),
		// A STUN server that never answers (as over a network that drops its UDP) beside a working
		// TURN server: gathering never completes in time.
		lab(simnet.Symmetric, simnet.Symmetric, []webrtc.ICEServer{simnet.TURN(), {URLs: []string{"stun:203.0.113.99:3478"}}}, "turn+deadstun"),
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
			var ms medianMS
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				ca, cb := connect(b, x, y, nil)
				ms.add(start)
				b.StopTimer()
				_ = ca.Close()
				_ = cb.Close()
				b.StartTimer()
			}
			ms.report(b)
		})
		b.Run(sc.name+"/pion", func(b *testing.B) {
			api1, api2, servers := sc.pion(b)
			var ms medianMS
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				p1, p2 := rawSetup(b, api1, api2, servers)
				ms.add(start)
				b.StopTimer()
				_ = p1.GracefulClose()
				_ = p2.GracefulClose()
				b.StartTimer()
			}
			ms.report(b)
		})
	}
}

// medianMS collects setup times and reports their median ("p50-ms"), which a shared machine's
// occasional stalls move far less than the mean (ns/op).
type medianMS []time.Duration

func (m *medianMS) add(start time.Time) { *m = append(*m, time.Since(start)) }

func (m medianMS) report(b *testing.B) {
	slices.Sort(m)
	b.ReportMetric(float64(m[len(m)/2].Microseconds())/1000, "p50-ms")
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

// BenchmarkSetupVariant measures pion's ICE knobs one at a time on our Transport, in the NAT
// scenarios where they matter.
func BenchmarkSetupVariant(b *testing.B) {
	waits := func(host, srflx, prflx, relay time.Duration) func(*webrtc.SettingEngine) {
		return func(se *webrtc.SettingEngine) {
			se.SetHostAcceptanceMinWait(host)
			se.SetSrflxAcceptanceMinWait(srflx)
			se.SetPrflxAcceptanceMinWait(prflx)
			se.SetRelayAcceptanceMinWait(relay)
		}
	}
	variants := []struct {
		name string
		tune func(*webrtc.SettingEngine)
	}{
		{"pionWaits", waits(0, 500*time.Millisecond, time.Second, 2*time.Second)},
		{"noWaits", waits(0, 0, 0, 0)},
		{"relay100ms", waits(0, 0, 0, 100*time.Millisecond)},
		{"relay300ms", waits(0, 0, 0, 300*time.Millisecond)},
		{"relay500ms", waits(0, 0, 0, 500*time.Millisecond)},
	}
	for _, sc := range setupScenarios() {
		if !strings.HasPrefix(sc.name, "nat-") {
			continue
		}
		for _, v := range variants {
			b.Run(sc.name+"/"+v.name, func(b *testing.B) {
				x, y := sc.lab(b, Config{tune: v.tune})
				var ms medianMS
				relayed := 0
				b.ResetTimer()
				for range b.N {
					start := time.Now()
					ca, cb := connect(b, x, y, nil)
					ms.add(start)
					b.StopTimer()
					if viaRelay(ca) {
						relayed++
					}
					_ = ca.Close()
					_ = cb.Close()
					b.StartTimer()
				}
				ms.report(b)
				// Where a direct path exists, how often ICE settled for the relay instead.
				b.ReportMetric(100*float64(relayed)/float64(b.N), "relayed-%")
			})
		}
	}
}

// viaRelay reports whether c's selected candidate pair goes through a TURN relay.
func viaRelay(c Conn) bool {
	pair, err := c.(*conn).pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	return err == nil && pair != nil &&
		(pair.Local.Typ == webrtc.ICECandidateTypeRelay || pair.Remote.Typ == webrtc.ICECandidateTypeRelay)
}

// Package simnet is a simulated internet inside the test process, on pion's vnet: no packet leaves the
// process, no privileges are needed, and ICE behaviour across NATs can be unit-tested and benchmarked
// (internal/testing/netlab is the real thing, with namespaces and processes).
//
// The addresses are RFC 5737 documentation ranges: 203.0.113.0/24 is the internet, where a STUN/TURN
// server runs on 203.0.113.1:3478 (user "u", password "p"); peer A sits at 203.0.113.10, or behind a
// NAT on 198.51.100.0/24; peer B at 203.0.113.20, or behind a NAT on 192.0.2.0/24. Packets to addresses
// nobody has vanish, as on the internet. vnet carries UDP only.
package simnet

import (
	"net"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
)

// Kind is how a peer is attached to the simulated internet.
type Kind int

const (
	Public    Kind = iota // an address on the internet, no NAT
	Cone                  // port-restricted cone NAT: one mapping per socket, unsolicited input dropped
	Symmetric             // a mapping per destination: direct paths need a relay
)

func (k Kind) String() string { return [...]string{"public", "cone", "symmetric"}[k] }

// The STUN/TURN server on the internet.
const (
	ServerIP   = "203.0.113.1"
	ServerAddr = ServerIP + ":3478"
	TURNUser   = "u"
	TURNPass   = "p"
	turnRealm  = "p2pcdn.test"
)

// Delay is the one-way delay the internet adds to each packet.
const Delay = 10 * time.Millisecond

// quiet keeps pion's own logs (vnet, TURN) out of test output.
var quiet = &logging.DefaultLoggerFactory{DefaultLogLevel: logging.LogLevelDisabled}

// Lab is one simulated internet with two peers' networks.
type Lab struct {
	A, B transport.Net
}

// New builds the internet with peers of the given kinds and the STUN/TURN server; it stops when the
// test ends.
func New(tb testing.TB, ka, kb Kind) *Lab {
	tb.Helper()
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "203.0.113.0/24", MinDelay: Delay, LoggerFactory: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	peer := func(kind Kind, publicIP, lanCIDR, lanIP string) transport.Net {
		if kind == Public {
			n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{publicIP}})
			if err != nil {
				tb.Fatal(err)
			}
			if err := wan.AddNet(n); err != nil {
				tb.Fatal(err)
			}
			return n
		}
		nat := &vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointAddrPortDependent}
		if kind == Symmetric {
			nat.MappingBehavior = vnet.EndpointAddrPortDependent
		}
		lan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: lanCIDR, StaticIPs: []string{publicIP}, NATType: nat,
			LoggerFactory: quiet})
		if err != nil {
			tb.Fatal(err)
		}
		if err := wan.AddRouter(lan); err != nil {
			tb.Fatal(err)
		}
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{lanIP}})
		if err != nil {
			tb.Fatal(err)
		}
		if err := lan.AddNet(n); err != nil {
			tb.Fatal(err)
		}
		return n
	}
	l := &Lab{
		A: peer(ka, "203.0.113.10", "198.51.100.0/24", "198.51.100.2"),
		B: peer(kb, "203.0.113.20", "192.0.2.0/24", "192.0.2.2"),
	}
	srvNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ServerIP}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := wan.AddNet(srvNet); err != nil {
		tb.Fatal(err)
	}
	if err := wan.Start(); err != nil {
		tb.Fatal(err)
	}
	pc, err := srvNet.ListenPacket("udp4", ServerAddr)
	if err != nil {
		tb.Fatal(err)
	}
	key := turn.GenerateAuthKey(TURNUser, turnRealm, TURNPass)
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         turnRealm,
		LoggerFactory: quiet,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			return ra.Username, key, ra.Username == TURNUser
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
				RelayAddress: net.ParseIP(ServerIP), Address: ServerIP, Net: srvNet,
			},
		}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = srv.Close()
		_ = wan.Stop()
	})
	return l
}

// STUN is the lab's server as a STUN server.
func STUN() webrtc.ICEServer { return webrtc.ICEServer{URLs: []string{"stun:" + ServerAddr}} }

// TURN is the lab's server as a TURN server over UDP.
func TURN() webrtc.ICEServer {
	return webrtc.ICEServer{URLs: []string{"turn:" + ServerAddr + "?transport=udp"}, Username: TURNUser,
		Credential: TURNPass, CredentialType: webrtc.ICECredentialTypePassword}
}

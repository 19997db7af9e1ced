package rtc

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

// A simulated internet inside the process (pion's vnet; no packet leaves it), with RFC 5737
// addresses: 203.0.113.0/24 is the internet, where a STUN/TURN server runs on 203.0.113.1:3478; peer A
// sits at 203.0.113.10 or behind a NAT on 198.51.100.0/24, peer B at 203.0.113.20 or behind a NAT on
// 192.0.2.0/24. Packets to addresses nobody has vanish, as on the internet.

// quietPion keeps pion's own logs (vnet, TURN) out of test output.
var quietPion = &logging.DefaultLoggerFactory{DefaultLogLevel: logging.LogLevelDisabled}

// natKind is how a peer is attached to the simulated internet.
type natKind int

const (
	public    natKind = iota // an address on the internet, no NAT
	cone                     // port-restricted cone NAT: one mapping per socket, unsolicited input dropped
	symmetric                // a mapping per destination: direct paths need a relay
)

func (k natKind) String() string { return [...]string{"public", "cone", "symmetric"}[k] }

const (
	labServerIP = "203.0.113.1"
	labServer   = labServerIP + ":3478"
)

// labDelay is the one-way delay the internet adds to each packet.
const labDelay = 10 * time.Millisecond

type vlab struct {
	a, b transport.Net
}

// newVLab builds the internet with peers of the given kinds and a STUN/TURN server (user u, password p).
func newVLab(tb testing.TB, ka, kb natKind) *vlab {
	tb.Helper()
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "203.0.113.0/24", MinDelay: labDelay, LoggerFactory: quietPion})
	if err != nil {
		tb.Fatal(err)
	}
	peer := func(kind natKind, publicIP, lanCIDR, lanIP string) transport.Net {
		if kind == public {
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
		if kind == symmetric {
			nat.MappingBehavior = vnet.EndpointAddrPortDependent
		}
		lan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: lanCIDR, StaticIPs: []string{publicIP}, NATType: nat, LoggerFactory: quietPion})
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
	l := &vlab{
		a: peer(ka, "203.0.113.10", "198.51.100.0/24", "198.51.100.2"),
		b: peer(kb, "203.0.113.20", "192.0.2.0/24", "192.0.2.2"),
	}
	srvNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{labServerIP}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := wan.AddNet(srvNet); err != nil {
		tb.Fatal(err)
	}
	if err := wan.Start(); err != nil {
		tb.Fatal(err)
	}
	pc, err := srvNet.ListenPacket("udp4", labServer)
	if err != nil {
		tb.Fatal(err)
	}
	key := turn.GenerateAuthKey(testTURNUser, testTURNRealm, testTURNPass)
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         testTURNRealm,
		LoggerFactory: quietPion,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			return ra.Username, key, ra.Username == testTURNUser
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
				RelayAddress: net.ParseIP(labServerIP), Address: labServerIP, Net: srvNet,
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

// transports returns a Transport for each side of the lab, using servers.
func (l *vlab) transports(tb testing.TB, servers []webrtc.ICEServer, cfg Config) (*Transport, *Transport) {
	tb.Helper()
	mk := func(n transport.Net) *Transport {
		c := cfg
		c.ICEServers = servers
		c.net = n
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
	return mk(l.a), mk(l.b)
}

package rtc

import (
	"net"
	"testing"

	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
)

// Loopback STUN/TURN server for tests and benchmarks: user "u", password "p".
const (
	testTURNUser  = "u"
	testTURNPass  = "p"
	testTURNRealm = "p2pcdn.test"
)

// startTURN serves STUN and TURN over UDP on a loopback port until the test ends, relaying from
// 127.0.0.1, and returns its address.
func startTURN(tb testing.TB) string {
	tb.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	key := turn.GenerateAuthKey(testTURNUser, testTURNRealm, testTURNPass)
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: testTURNRealm,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			return ra.Username, key, ra.Username == testTURNUser
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
				RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1",
			},
		}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = srv.Close() })
	return pc.LocalAddr().String()
}

func stunServer(addr string) webrtc.ICEServer {
	return webrtc.ICEServer{URLs: []string{"stun:" + addr}}
}

func turnServer(addr string) webrtc.ICEServer {
	return webrtc.ICEServer{URLs: []string{"turn:" + addr + "?transport=udp"}, Username: testTURNUser,
		Credential: testTURNPass, CredentialType: webrtc.ICECredentialTypePassword}
}

package rtc

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// TestICETCP: a peer whose network carries no UDP reaches a peer that accepts ICE-TCP
// (Config.ICETCPListener) over TCP.
func TestICETCP(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	seeder := newTestTransport(t, Config{ICETCPListener: ln})
	tcpOnly := newTestTransport(t, Config{tune: func(se *webrtc.SettingEngine) {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	}})
	for _, dir := range []string{"tcp-only peer dials", "seeder dials"} {
		t.Run(dir, func(t *testing.T) {
			a, b := tcpOnly, seeder
			if dir == "seeder dials" {
				a, b = seeder, tcpOnly
			}
			ca, cb := connect(t, a, b, nil)
			echo(t, ca, cb, "over ICE-TCP")
			echo(t, cb, ca, "and back")
			onTCP := ca.RemoteAddr() // the TCP-only side's view of the seeder
			if dir == "seeder dials" {
				onTCP = cb.RemoteAddr()
			}
			if !strings.HasSuffix(onTCP, ":"+strconv.Itoa(port)) {
				t.Errorf("the TCP-only peer reached the seeder at %s, want the ICE-TCP port %d", onTCP, port)
			}
		})
	}
}

package rtc

import (
	"net"
	"net/netip"
	"strings"

	"github.com/pion/ice/v4"
)

// loopbackCandidate reports whether an ICE candidate line (with or without the "a=" prefix) is a UDP or
// TCP candidate on an IPv4 loopback address, the only kinds loopback mode uses.
func loopbackCandidate(line string) bool {
	line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "a="))
	c, err := ice.UnmarshalCandidate(line)
	if err != nil {
		return false
	}
	if nt := c.NetworkType(); nt != ice.NetworkTypeUDP4 && nt != ice.NetworkTypeTCP4 {
		return false
	}
	addr, err := netip.ParseAddr(c.Address())
	return err == nil && addr.Is4() && addr.IsLoopback()
}

// filterLoopbackSDP drops every candidate line that is not a loopback IPv4 candidate, so that the ICE
// agent never tries (or leaks traffic to) another address. It keeps the SDP's line endings.
func filterLoopbackSDP(sdp string) string {
	var b strings.Builder
	b.Grow(len(sdp))
	for line := range strings.SplitAfterSeq(sdp, "\n") {
		if strings.HasPrefix(line, "a=candidate:") && !loopbackCandidate(line) {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// loopbackInterfaces returns the names of the host's loopback interfaces ("lo" on Linux, "lo0" elsewhere).
func loopbackInterfaces() map[string]bool {
	names := map[string]bool{"lo": true, "lo0": true}
	ifaces, err := net.Interfaces()
	if err != nil {
		return names
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagLoopback != 0 {
			names[ifc.Name] = true
		}
	}
	return names
}

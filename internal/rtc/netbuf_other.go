//go:build !unix

package rtc

import "net"

// receiveBuffer is unknown here: our signals then say nothing about it, and peers pace toward us as
// toward a browser.
func receiveBuffer(*net.UDPConn) int { return 0 }

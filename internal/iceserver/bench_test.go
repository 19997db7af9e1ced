package iceserver

import (
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// BenchmarkBinding measures a STUN binding round trip over loopback, with
// the server on its own socket (direct) and behind the Demux that shares the
// socket with the DHT: the demultiplexer's cost is the difference.
func BenchmarkBinding(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(map[bool]string{false: "direct", true: "demux"}[shared], func(b *testing.B) {
			var pc, conn net.PacketConn
			if shared {
				d, sock := newTestDemux(b)
				pc, conn = sock, d.STUN()
			} else {
				pc = listenUDP(b)
				conn = pc
			}
			start(b, Config{PacketConn: conn, BindingRate: 1e9})
			cl := listenUDP(b)
			req := stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw
			buf := make([]byte, 1500)
			b.ResetTimer()
			for range b.N {
				cl.WriteTo(req, pc.LocalAddr())
				cl.SetReadDeadline(time.Now().Add(waitTimeout))
				if _, _, err := cl.ReadFrom(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package federation

import (
	"net"
	"sync/atomic"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
)

// guardConn drops UDP packets the DHT library would panic on. The library
// decodes every packet it reads before looking at it, and the decoder of
// anacrolix/dht v2.23.0 panics on some inputs (krpc.NodeAddr.UnmarshalBinary
// makes a slice of negative length for a "values" entry shorter than two
// bytes; found by FuzzKRPCMessage), which would let one packet from anyone
// crash the mediator. Decoding each packet once more here, under recover,
// costs little at DHT packet rates.
//
// The guard also hands the 40-byte layer (protoDHT) the packets that are
// its own before the library sees them.
type guardConn struct {
	net.PacketConn
	// intercept, when set, takes the packets it reports true for.
	intercept func(b []byte, from net.Addr) bool
	dropped   atomic.Int64
}

func (g *guardConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := g.PacketConn.ReadFrom(b)
		if err != nil {
			return n, addr, err
		}
		if g.intercept != nil && g.intercept(b[:n], addr) {
			continue
		}
		if decodesSafely(b[:n]) {
			return n, addr, nil
		}
		g.dropped.Add(1)
	}
}

// decodesSafely reports whether decoding b as a KRPC message returns
// (successfully or with an error) rather than panicking.
func decodesSafely(b []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	var m krpc.Msg
	_ = bencode.Unmarshal(b, &m)
	return true
}

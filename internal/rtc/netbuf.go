package rtc

import (
	"fmt"
	"net"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// bufferedNet is the standard network with larger UDP socket buffers: at data-channel speeds the
// default (~200 KiB) receive buffer overflows in bursts and every drop costs an SCTP retransmission.
type bufferedNet struct {
	*stdnet.Net
	size int
}

func newBufferedNet(size int) (*bufferedNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	return &bufferedNet{Net: n, size: size}, nil
}

type socketBuffers interface {
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
}

func (n *bufferedNet) setBuffers(c any) {
	if sb, ok := c.(socketBuffers); ok {
		// Best effort: the kernel silently caps the size at net.core.rmem_max/wmem_max.
		_ = sb.SetReadBuffer(n.size)
		_ = sb.SetWriteBuffer(n.size)
	}
}

func (n *bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err == nil {
		n.setBuffers(c)
	}
	return c, err
}

func (n *bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		n.setBuffers(c)
	}
	return c, err
}

package rtc

import (
	"fmt"
	"net"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// bufferedNet is the standard network with larger UDP socket buffers: at data-channel speeds the
// default (~200 KiB) receive buffer overflows in bursts and every drop costs an SCTP retransmission.
//
// Its UDP sockets also pace packets to the destinations in paced (wirepace.go).
type bufferedNet struct {
	*stdnet.Net
	size  int // 0: the system's buffers
	paced *pacedDests
	// rcvbuf is the receive buffer the kernel grants such a socket, as it reports it (Linux counts its
	// own overhead and reports twice what was asked); 0 when unknown. Our signals advertise it.
	rcvbuf int
}

func newBufferedNet(size int, paced *pacedDests) (*bufferedNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	b := &bufferedNet{Net: n, size: size, paced: paced}
	if size <= 0 {
		return b, nil
	}
	// Every socket asks for the same size, so one probe tells what each gets. The wildcard address
	// binds even where no interface is up; nothing is sent.
	if c, err := net.ListenUDP("udp4", nil); err == nil {
		b.setBuffers(c)
		b.rcvbuf = receiveBuffer(c)
		_ = c.Close()
	}
	return b, nil
}

type socketBuffers interface {
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
}

func (n *bufferedNet) setBuffers(c any) {
	if sb, ok := c.(socketBuffers); ok && n.size > 0 {
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
	if err != nil {
		return nil, err
	}
	n.setBuffers(c)
	return paceUDP(c, n.paced), nil
}

//go:build unix

package rtc

import (
	"net"
	"syscall"
)

// receiveBuffer is c's SO_RCVBUF as the kernel reports it, 0 if it cannot be read.
func receiveBuffer(c *net.UDPConn) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	size := 0
	_ = raw.Control(func(fd uintptr) {
		if v, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF); err == nil {
			size = v
		}
	})
	return size
}

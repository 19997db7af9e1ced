package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// Raw pion's knobs: the sizes p2pcdn's transport uses (internal/rtc's
// defaults), so the baseline differs only by what p2pcdn adds on top.
const (
	rawChunk     = 64 << 10
	rawHighWater = 1 << 20
	rawLowWater  = 512 << 10
	rawRecvBuf   = 4 << 20
	// rawSocketBuffer is p2pcdn's SO_RCVBUF/SO_SNDBUF for ICE sockets.
	rawSocketBuffer = 4 << 20
)

// rawReceiverArg makes this program the receiving half of rawPion.
const rawReceiverArg = "-raw-receiver"

func rawAPI(sockBuf int) (*webrtc.API, error) {
	var se webrtc.SettingEngine
	if sockBuf > 0 {
		n, err := stdnet.NewNet()
		if err != nil {
			return nil, err
		}
		se.SetNet(&bigBufNet{Net: n, size: sockBuf})
	}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetSCTPMaxReceiveBufferSize(rawRecvBuf)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se)), nil
}

// rawPion pushes size bytes through one ordered, reliable data channel from
// this process to a child process (this program again, as a receiver) over
// loopback, with the buffered-amount flow control pion documents, and
// returns the time from the channel opening to the receiver reporting the
// last byte. Descriptions are complete (non-trickle), as p2pcdn's.
//
// With sockBuf > 0 the ICE UDP sockets of both ends get that
// SO_RCVBUF/SO_SNDBUF, as p2pcdn sets them; 0 keeps the system default.
func rawPion(ctx context.Context, size int64, sockBuf int) (time.Duration, error) {
	api, err := rawAPI(sockBuf)
	if err != nil {
		return 0, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return 0, err
	}
	defer pc.Close()
	dc, err := pc.CreateDataChannel("bench", nil)
	if err != nil {
		return 0, err
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return 0, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return 0, err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return 0, ctx.Err()
	}

	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	child := exec.CommandContext(ctx, self, rawReceiverArg, strconv.FormatInt(size, 10), strconv.Itoa(sockBuf))
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		return 0, err
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := child.Start(); err != nil {
		return 0, err
	}
	defer child.Wait()
	defer child.Process.Kill() // no-op once it has exited
	if err := json.NewEncoder(stdin).Encode(pc.LocalDescription()); err != nil {
		return 0, err
	}
	lines := bufio.NewReader(stdout)
	var answer webrtc.SessionDescription
	line, err := lines.ReadBytes('\n')
	if err != nil {
		return 0, fmt.Errorf("raw receiver: %w", err)
	}
	if err := json.Unmarshal(line, &answer); err != nil {
		return 0, fmt.Errorf("raw receiver answer: %w", err)
	}

	opened := make(chan time.Time, 1)
	sendErr := make(chan error, 1)
	low := make(chan struct{}, 1)
	dc.SetBufferedAmountLowThreshold(rawLowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case low <- struct{}{}:
		default:
		}
	})
	sendCtx, stopSend := context.WithCancel(ctx)
	defer stopSend()
	dc.OnOpen(func() {
		opened <- time.Now()
		go func() { // ends when everything is sent or sendCtx ends
			chunk := make([]byte, rawChunk)
			for sent := int64(0); sent < size; {
				n := min(int64(len(chunk)), size-sent)
				if err := dc.Send(chunk[:n]); err != nil {
					sendErr <- err
					return
				}
				sent += n
				for dc.BufferedAmount() > rawHighWater {
					select {
					case <-low:
					case <-time.After(100 * time.Millisecond): // a missed edge costs a poll, not a hang
					case <-sendCtx.Done():
						return
					}
				}
			}
		}()
	})
	if err := pc.SetRemoteDescription(answer); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	var t1 time.Time
	go func() { // ends when the child prints or exits
		_, err := lines.ReadString('\n')
		t1 = time.Now()
		done <- err
	}()
	var t0 time.Time
	select {
	case t0 = <-opened:
	case <-time.After(time.Minute):
		return 0, errors.New("data channel did not open")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case err := <-done:
		if err != nil {
			return 0, fmt.Errorf("raw receiver: %w", err)
		}
		return t1.Sub(t0), nil
	case err := <-sendErr:
		return 0, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// rawReceiver is the child half of rawPion: it reads the offer on stdin,
// prints the answer, counts size bytes and prints "done".
func rawReceiver(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: -raw-receiver SIZE SOCKBUF")
	}
	size, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return err
	}
	sockBuf, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	api, err := rawAPI(sockBuf)
	if err != nil {
		return err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	defer pc.Close()
	var received atomic.Int64
	done := make(chan struct{})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(msg webrtc.DataChannelMessage) {
			if received.Add(int64(len(msg.Data))) == size {
				close(done)
			}
		})
	})
	var offer webrtc.SessionDescription
	if err := json.NewDecoder(os.Stdin).Decode(&offer); err != nil {
		return fmt.Errorf("read offer: %w", err)
	}
	if err := pc.SetRemoteDescription(offer); err != nil {
		return err
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return err
	}
	<-gathered
	if err := json.NewEncoder(os.Stdout).Encode(pc.LocalDescription()); err != nil {
		return err
	}
	// The parent kills us if it gives up; stdin closing means it is gone.
	gone := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(gone) }()
	select {
	case <-done:
		_, err := fmt.Println("done")
		return err
	case <-gone:
		return errors.New("sender went away")
	}
}

// bigBufNet is the standard network with bigger UDP socket buffers.
type bigBufNet struct {
	*stdnet.Net
	size int
}

type socketBuffers interface {
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
}

func (n *bigBufNet) grow(c any) {
	if sb, ok := c.(socketBuffers); ok {
		// Best effort: the kernel caps these at net.core.rmem_max/wmem_max.
		sb.SetReadBuffer(n.size)
		sb.SetWriteBuffer(n.size)
	}
}

func (n *bigBufNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		n.grow(c)
	}
	return c, err
}

func (n *bigBufNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err == nil {
		n.grow(c)
	}
	return c, err
}

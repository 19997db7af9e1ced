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
	"strings"
	"syscall"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// The native throughput baseline is raw pion tuned as far as plain pion
// goes, between two processes as p2pcdn's seed and get are: a detached
// channel (plain blocking Read and Write, no per-message callback or copy),
// 4 MiB UDP socket buffers and a 4 MiB SCTP receive window (a smaller socket
// buffer drops bursts, and each loss costs pion a retransmission), 64 KiB
// messages and the usual buffered-amount flow control.
const (
	rawSockBuf   = 4 << 20
	rawSCTPRecv  = 4 << 20
	rawHighWater = 1 << 20
	rawLowWater  = 512 << 10
)

// The child modes of this program that make the two ends.
const (
	rawSendArg = "__rawsend"
	rawRecvArg = "__rawrecv"
)

// rawProcResult is one baseline transfer.
type rawProcResult struct {
	wall time.Duration // receiver: channel open to last byte
	cpu  time.Duration // both processes, whole lives (user + system)
}

// rawPionProcs moves size bytes from one child process to another over a
// raw pion data channel on loopback. The receiver times from its channel
// opening to the last byte, which leaves out process start and connection
// setup that p2pcdn's whole-process figure includes: the baseline is the
// harder to beat. CPU is both children's whole lives.
func (b *bench) rawPionProcs(ctx context.Context, size int64) (rawProcResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	recv := exec.CommandContext(ctx, b.self, rawRecvArg, strconv.FormatInt(size, 10))
	send := exec.CommandContext(ctx, b.self, rawSendArg, strconv.FormatInt(size, 10))
	var res rawProcResult
	var lines [2]*bufio.Reader
	var stdins [2]io.WriteCloser
	errbs := [2]*limited{{n: 16 << 10}, {n: 16 << 10}}
	for i, c := range []*exec.Cmd{recv, send} {
		c.Env = b.env
		c.Stderr = errbs[i]
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		in, err := c.StdinPipe()
		if err != nil {
			return res, err
		}
		out, err := c.StdoutPipe()
		if err != nil {
			return res, err
		}
		stdins[i], lines[i] = in, bufio.NewReader(out)
	}
	for i, c := range []*exec.Cmd{recv, send} {
		if err := c.Start(); err != nil {
			return res, fmt.Errorf("raw pion: %w", err)
		}
		defer func() {
			stdins[i].Close() // tells the child to exit
			c.Wait()
		}()
	}
	fail := func(err error) (rawProcResult, error) {
		recv.Process.Kill()
		send.Process.Kill()
		return res, fmt.Errorf("raw pion: %w (receiver: %s; sender: %s)", err, lastLine(errbs[0].String()), lastLine(errbs[1].String()))
	}
	// The sender's offer goes to the receiver, the answer back; then the
	// receiver reports how long the bytes took.
	offer, err := lines[1].ReadString('\n')
	if err != nil {
		return fail(fmt.Errorf("reading the offer: %w", err))
	}
	if _, err := io.WriteString(stdins[0], offer); err != nil {
		return fail(err)
	}
	answer, err := lines[0].ReadString('\n')
	if err != nil {
		return fail(fmt.Errorf("reading the answer: %w", err))
	}
	if _, err := io.WriteString(stdins[1], answer); err != nil {
		return fail(err)
	}
	done, err := lines[0].ReadString('\n')
	if err != nil {
		return fail(fmt.Errorf("waiting for the receiver: %w", err))
	}
	ns, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(done), "done "), 10, 64)
	if err != nil {
		return fail(fmt.Errorf("receiver said %q", done))
	}
	res.wall = time.Duration(ns)
	for i, c := range []*exec.Cmd{recv, send} {
		stdins[i].Close()
		if err := c.Wait(); err != nil {
			return fail(err)
		}
		res.cpu += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
	}
	return res, nil
}

// rawProcAPI is pion with the baseline's settings, ICE held to loopback UDP4.
func rawProcAPI() (*webrtc.API, error) {
	var se webrtc.SettingEngine
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	se.SetNet(&bigBufNet{Net: n, size: rawSockBuf})
	se.DetachDataChannels()
	se.SetSCTPMaxReceiveBufferSize(rawSCTPRecv)
	iceOnLoopback(&se)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se)), nil
}

// rawChild runs one end of rawPionProcs: args are the mode and the size.
// Descriptions travel as JSON lines on stdin/stdout; stdin closing ends it.
func rawChild(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: __rawsend|__rawrecv SIZE")
	}
	size, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil {
		return err
	}
	api, err := rawProcAPI()
	if err != nil {
		return err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	defer pc.Close()
	in := bufio.NewReader(os.Stdin)
	readDesc := func() (webrtc.SessionDescription, error) {
		var d webrtc.SessionDescription
		line, err := in.ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(line, &d)
		}
		return d, err
	}
	writeDesc := func(d webrtc.SessionDescription) error {
		gathered := webrtc.GatheringCompletePromise(pc)
		if err := pc.SetLocalDescription(d); err != nil {
			return err
		}
		<-gathered
		return json.NewEncoder(os.Stdout).Encode(pc.LocalDescription())
	}
	result := make(chan error, 1)
	if args[0] == rawSendArg {
		dc, err := pc.CreateDataChannel("raw", nil)
		if err != nil {
			return err
		}
		dc.OnOpen(func() {
			go func() { result <- rawSend(dc, size) }() // ends when sent or the channel fails
		})
		o, err := pc.CreateOffer(nil)
		if err != nil {
			return err
		}
		if err := writeDesc(o); err != nil {
			return err
		}
		a, err := readDesc()
		if err != nil {
			return fmt.Errorf("reading the answer: %w", err)
		}
		if err := pc.SetRemoteDescription(a); err != nil {
			return err
		}
	} else {
		pc.OnDataChannel(func(dc *webrtc.DataChannel) {
			dc.OnOpen(func() {
				t0 := time.Now()
				go func() { // ends at the last byte or when the channel fails
					err := rawRecv(dc, size)
					if err == nil {
						_, err = fmt.Printf("done %d\n", time.Since(t0).Nanoseconds())
					}
					result <- err
				}()
			})
		})
		o, err := readDesc()
		if err != nil {
			return fmt.Errorf("reading the offer: %w", err)
		}
		if err := pc.SetRemoteDescription(o); err != nil {
			return err
		}
		a, err := pc.CreateAnswer(nil)
		if err != nil {
			return err
		}
		if err := writeDesc(a); err != nil {
			return err
		}
	}
	if err := <-result; err != nil {
		return err
	}
	// Stay until the parent is done, so the sender's last bytes are
	// acknowledged and both exit cleanly.
	_, _ = io.Copy(io.Discard, in)
	return nil
}

func rawSend(dc *webrtc.DataChannel, size int64) error {
	rw, err := dc.Detach()
	if err != nil {
		return err
	}
	low := make(chan struct{}, 1)
	dc.SetBufferedAmountLowThreshold(rawLowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case low <- struct{}{}:
		default:
		}
	})
	chunk := make([]byte, rawChunk)
	for sent := int64(0); sent < size; {
		for dc.BufferedAmount() > rawHighWater {
			select {
			case <-low:
			case <-time.After(100 * time.Millisecond): // a missed edge costs a poll, not a hang
			}
		}
		n := min(int64(len(chunk)), size-sent)
		if _, err := rw.Write(chunk[:n]); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		sent += n
	}
	return nil
}

func rawRecv(dc *webrtc.DataChannel, size int64) error {
	rw, err := dc.Detach()
	if err != nil {
		return err
	}
	return readAll(rw, size)
}

func readAll(rw datachannel.ReadWriteCloser, size int64) error {
	buf := make([]byte, rawChunk)
	for got := int64(0); got < size; {
		n, err := rw.Read(buf)
		if err != nil {
			return fmt.Errorf("receive after %d bytes: %w", got, err)
		}
		got += int64(n)
	}
	return nil
}

// bigBufNet is the standard network with bigger UDP socket buffers.
type bigBufNet struct {
	*stdnet.Net
	size int
}

func (n *bigBufNet) grow(c any) {
	type socketBuffers interface {
		SetReadBuffer(int) error
		SetWriteBuffer(int) error
	}
	if sb, ok := c.(socketBuffers); ok {
		// Best effort: the kernel caps these at net.core.rmem_max/wmem_max.
		_ = sb.SetReadBuffer(n.size)
		_ = sb.SetWriteBuffer(n.size)
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

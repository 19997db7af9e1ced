package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// rawChunk is the message size of the raw data-channel baselines.
const rawChunk = 64 << 10

// rawAPI is plain pion with its default settings, except that ICE may only
// use loopback UDP4 (the bench never leaves 127.0.0.1).
func rawAPI() *webrtc.API {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool {
		ifc, err := net.InterfaceByName(name)
		return err == nil && ifc.Flags&net.FlagLoopback != 0
	})
	lo := func(ip net.IP) bool { return ip.To4() != nil && ip.IsLoopback() }
	se.SetIPFilter(lo)
	se.SetRemoteIPFilter(lo)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// offer creates a complete (non-trickle) offer on pc.
func offer(ctx context.Context, pc *webrtc.PeerConnection) (webrtc.SessionDescription, error) {
	o, err := pc.CreateOffer(nil)
	if err != nil {
		return o, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		return o, err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return o, ctx.Err()
	}
	return *pc.LocalDescription(), nil
}

// send pushes size bytes through dc in rawChunk messages with the usual
// buffered-amount flow control (pause above 1 MiB, resume below 512 KiB).
func send(ctx context.Context, dc *webrtc.DataChannel, size int64) error {
	low := make(chan struct{}, 1)
	dc.SetBufferedAmountLowThreshold(512 << 10)
	dc.OnBufferedAmountLow(func() {
		select {
		case low <- struct{}{}:
		default:
		}
	})
	chunk := make([]byte, rawChunk)
	for sent := int64(0); sent < size; {
		for dc.BufferedAmount() > 1<<20 {
			select {
			case <-low:
			case <-time.After(time.Second): // re-check: a wake-up may predate the wait
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		n := min(int64(len(chunk)), size-sent)
		if err := dc.Send(chunk[:n]); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		sent += n
	}
	return nil
}

// rawPion sends size bytes between two pion peer connections in this
// process and returns the time from the channel opening to the last byte
// received, and the CPU this process spent meanwhile (both ends).
func rawPion(ctx context.Context, size int64) (time.Duration, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	api := rawAPI()
	tx, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return 0, 0, err
	}
	defer tx.Close()
	rx, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return 0, 0, err
	}
	defer rx.Close()

	done := make(chan struct{})
	rx.OnDataChannel(func(dc *webrtc.DataChannel) {
		var got int64
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			got += int64(len(m.Data))
			if got == size {
				close(done)
			}
		})
	})
	dc, err := tx.CreateDataChannel("raw", nil)
	if err != nil {
		return 0, 0, err
	}
	opened := make(chan struct{})
	dc.OnOpen(func() { close(opened) })

	o, err := offer(ctx, tx)
	if err != nil {
		return 0, 0, err
	}
	if err := rx.SetRemoteDescription(o); err != nil {
		return 0, 0, err
	}
	a, err := rx.CreateAnswer(nil)
	if err != nil {
		return 0, 0, err
	}
	gathered := webrtc.GatheringCompletePromise(rx)
	if err := rx.SetLocalDescription(a); err != nil {
		return 0, 0, err
	}
	<-gathered
	if err := tx.SetRemoteDescription(*rx.LocalDescription()); err != nil {
		return 0, 0, err
	}
	select {
	case <-opened:
	case <-ctx.Done():
		return 0, 0, errors.New("raw pion: the data channel did not open")
	}
	c0, t0 := selfCPU(), time.Now()
	if err := send(ctx, dc, size); err != nil {
		return 0, 0, err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return 0, 0, errors.New("raw pion: not every byte arrived")
	}
	return time.Since(t0), selfCPU() - c0, nil
}

package main

import (
	"context"
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
	iceOnLoopback(&se)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// iceOnLoopback restricts ICE to loopback UDP4 without mDNS.
func iceOnLoopback(se *webrtc.SettingEngine) {
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

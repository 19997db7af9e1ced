package rtc

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// pacer is a peer connection's send window (see doc.go), shared by its channels: they feed one SCTP
// association, whose packets land in one socket at the remote, so what must fit there is their sum. A
// page fetching two dozen files over one connection, a channel each, would otherwise have two dozen
// windows in flight toward a socket that holds one.
//
// Writers wait for room on wake, which is closed and replaced whenever room may have appeared: a
// channel's buffered amount fell below its low threshold, or a reservation ended. Every channel's
// threshold is window/(2*channels), so while no channel is above its own the sum is below half the
// window, and a message of at most half the window fits: a waiter is never left without a wake-up.
type pacer struct {
	pc *webrtc.PeerConnection

	mu       sync.Mutex
	chans    map[*conn]struct{} // open channels
	reserved int                // bytes granted to writers and not yet in a buffered amount
	wake     chan struct{}

	minWin, maxWin int           // window bounds, see Config.MinWindow and windowFloor
	rate           float64       // window bytes per second of round trip, see Config.WindowRate
	minRTT         time.Duration // smallest smoothed round trip seen; 0 until measured
	nRTT           int           // times minRTT was sampled
	window         int           // current send window

	// Packet pacing (wirepace.go) toward a remote that did not say what its socket holds.
	log    *slog.Logger
	dests  *pacedDests    // nil: no pacing (our peers, or no socket of ours to pace)
	dst    netip.AddrPort // the selected pair's remote address; invalid if unknown
	pacing bool           // dst is registered in dests
}

// newPacer makes the send window of pc toward a remote whose socket holds rcvbuf bytes (0: unknown).
//
// One design serves three cases (doc.go has the measurements). The window is the path's smallest round
// trip times WindowRate, between a floor and HighWater:
//   - the floor keeps what arrives at once within the remote's socket: MinWindow (64 KiB) toward a
//     browser, whose 128 KiB socket overflows from larger bursts on a short path, half the advertised
//     buffer toward our native peers, who can take a full HighWater on loopback (throughput, issue 15);
//   - the round trip is known from the start: ICE measured it with its checks, which a browser answers
//     from its network thread (a busy page does not inflate them), so across a WAN the window covers
//     the bandwidth-delay product from the first byte instead of staying at the floor for the 8 window
//     fills it takes SCTP to sample the round trip (issue 16: a 1 MB transfer is over by then);
//   - on a short path the round trip is small and the window stays at the floor, paced as before; if
//     ICE's figure was inflated (a loaded machine), SCTP's smaller samples shrink the window at its
//     first fill, since the window follows the smallest round trip seen;
//   - a window above the floor toward a browser is more than its socket takes at once, and SCTP sends
//     its congestion window in bursts, so the connection's packets are then spaced out at the window's
//     rate beneath SCTP (wirepace.go). Our peers' sockets take a whole window: never paced.
func newPacer(pc *webrtc.PeerConnection, cfg Config, rcvbuf int, dests *pacedDests, log *slog.Logger) *pacer {
	floor := windowFloor(cfg, rcvbuf)
	p := &pacer{
		pc:     pc,
		chans:  make(map[*conn]struct{}),
		wake:   make(chan struct{}),
		minWin: floor,
		maxWin: cfg.HighWater,
		rate:   float64(cfg.WindowRate),
		window: floor,
	}
	if rcvbuf <= 0 && dests != nil {
		p.dests, p.dst, p.log = dests, iceRemote(pc), log
	}
	if rtt := iceRTT(pc); rtt > 0 {
		p.minRTT, p.nRTT = rtt, rttSamples
		p.window = p.windowFor(rtt)
	}
	p.paceLocked()
	return p
}

// paceLocked paces packets toward a browser whose window is larger than what its socket always takes
// (wirepace.go): at the window's rate, in bursts of a quarter of the floor. It stops pacing otherwise.
func (p *pacer) paceLocked() {
	if p.dests == nil || !p.dst.IsValid() {
		return
	}
	if p.window <= p.minWin || p.minRTT <= 0 {
		if p.pacing {
			p.dests.remove(p.dst)
			p.pacing = false
		}
		return
	}
	bps := float64(p.window) / p.minRTT.Seconds()
	if !p.pacing && p.log != nil {
		p.log.Debug("pacing packets", "remote", p.dst, "window", p.window, "rtt", p.minRTT, "bytes_per_sec", int(bps))
	}
	p.dests.set(p.dst, bps, p.minWin/4)
	p.pacing = true
}

// stop ends the pacing of the connection's packets.
func (p *pacer) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pacing {
		p.dests.remove(p.dst)
		p.pacing = false
	}
	p.dests = nil
}

// iceRemote is the remote address of pc's selected candidate pair, invalid when unknown (or a name).
func iceRemote(pc *webrtc.PeerConnection) netip.AddrPort {
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return netip.AddrPort{}
	}
	pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Remote == nil {
		return netip.AddrPort{}
	}
	a, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), pair.Remote.Port)
}

// iceRTT is the round trip of pc's selected candidate pair as ICE's checks measured it (the smaller of
// the last and the mean), or 0 when unknown.
func iceRTT(pc *webrtc.PeerConnection) time.Duration {
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil || sctp.Transport().ICETransport() == nil {
		return 0
	}
	st, ok := sctp.Transport().ICETransport().GetSelectedCandidatePairStats()
	if !ok || st.CurrentRoundTripTime <= 0 {
		return 0
	}
	rtt := st.CurrentRoundTripTime
	if st.ResponsesReceived > 0 && st.TotalRoundTripTime > 0 {
		rtt = min(rtt, st.TotalRoundTripTime/float64(st.ResponsesReceived))
	}
	return time.Duration(rtt * float64(time.Second))
}

// windowFloor is the send window on a short path toward a remote whose socket holds rcvbuf bytes as
// its kernel counts them (0: unknown, a browser). Linux charges a datagram of ours about twice its size,
// so half of rcvbuf can be in flight without the remote's socket overflowing even if it stops reading.
func windowFloor(cfg Config, rcvbuf int) int {
	return min(max(rcvbuf/2, cfg.MinWindow), cfg.HighWater)
}

// add makes c share the window.
func (p *pacer) add(c *conn) {
	c.dc.OnBufferedAmountLow(p.notify)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.chans[c] = struct{}{}
	p.setThresholdsLocked()
}

// remove takes a closing channel out; what it still has buffered no longer counts.
func (p *pacer) remove(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.chans[c]; !ok {
		return
	}
	delete(p.chans, c)
	p.setThresholdsLocked()
	p.notifyLocked()
}

func (p *pacer) notify() {
	p.mu.Lock()
	p.notifyLocked()
	p.mu.Unlock()
}

func (p *pacer) notifyLocked() {
	close(p.wake)
	p.wake = make(chan struct{})
}

func (p *pacer) setThresholdsLocked() {
	if len(p.chans) == 0 {
		return
	}
	th := uint64(p.window / (2 * len(p.chans)))
	for c := range p.chans {
		c.dc.SetBufferedAmountLowThreshold(th)
	}
}

// bufferedLocked is what the channels have queued or in flight, plus what writers were granted.
func (p *pacer) bufferedLocked() int {
	sum := p.reserved
	for c := range p.chans {
		sum += int(c.dc.BufferedAmount())
	}
	return sum
}

// reserve blocks until the next message of c fits in the window and returns its size: up to want
// bytes, cut to chunkFor the window's floor. The caller writes it and then calls release with it.
// Called with c.wmu held.
func (p *pacer) reserve(c *conn, want int) (int, error) {
	for {
		p.mu.Lock()
		// Sized by the floor, not the window: a window fitted to a long path toward a browser still
		// gets 16 KiB messages, each delivered as soon as its packets are in (a 64 KiB message waits
		// for its last packet, often a round trip behind the congestion window's edge).
		n := min(want, chunkFor(p.minWin, c.chunk))
		if p.bufferedLocked()+n <= p.window {
			p.reserved += n
			p.mu.Unlock()
			return n, nil
		}
		// Re-measured only when full: reading SCTP's statistics takes its lock.
		if w := p.window; p.updateWindowLocked() != w {
			p.mu.Unlock()
			continue // the message is sized again for the new window
		}
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-c.closed:
			return 0, net.ErrClosed
		case <-c.p.done:
			// The association is gone (the remote aborted or closed, or ICE failed): the buffered
			// amount will never fall.
			return 0, errAssociationGone
		}
	}
}

// release ends a reservation of n bytes, now in the channel's buffered amount (or never sent).
func (p *pacer) release(n int) {
	p.mu.Lock()
	p.reserved -= n
	p.notifyLocked() // a waiter that counted the reservation may fit now
	p.mu.Unlock()
}

// rttSamples is how many times the window must have filled, each time sampling SCTP's smoothed round
// trip, before it grows when ICE gave no round trip: the first sample is the channel-open message's round trip, which a busy
// browser can inflate tenfold, and the smoothing (1/8 per sample) takes a while to forget it.
const rttSamples = 8

// updateWindowLocked sizes the send window from the smallest round trip SCTP has measured and returns
// it. The smallest, not the current one: queueing in a slow receiver raises the round trip, and a
// window that grew with it would overflow that receiver.
func (p *pacer) updateWindowLocked() int {
	if sctp := p.pc.SCTP(); sctp != nil {
		if s := sctp.Stats().SmoothedRoundTripTime; s > 0 {
			p.nRTT++
			if rtt := time.Duration(s * float64(time.Second)); p.minRTT == 0 || rtt < p.minRTT {
				p.minRTT = rtt
			}
		}
	}
	w := p.minWin
	if p.nRTT >= rttSamples {
		w = p.windowFor(p.minRTT)
	}
	if w != p.window {
		p.window = w
		p.setThresholdsLocked()
	}
	p.paceLocked() // the window or the round trip may have changed
	return w
}

// windowFor is the send window for a path whose smallest round trip is rtt (0 when unknown).
func (p *pacer) windowFor(rtt time.Duration) int {
	return min(max(int(rtt.Seconds()*p.rate), p.minWin), p.maxWin)
}

// minChunk is the smallest message Write cuts (unless it has less to write).
const minChunk = 4 << 10

// chunkFor is the message size for a send window: a quarter of it, so that several messages are in
// flight and the writer tops the window up in small steps, and at most largest. A browser behind a
// 64 KiB window thus gets 16 KiB messages (measured faster there than 64 KiB, see doc.go), our own
// peers behind larger windows fewer, larger ones, which cost less per byte at both ends. Never more
// than half the window (see pacer): windows are at least 2*minChunk.
func chunkFor(window, largest int) int {
	return max(min(window/4, largest), min(minChunk, largest))
}

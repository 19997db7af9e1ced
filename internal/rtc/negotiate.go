package rtc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/p2pcdn/p2pcdn/internal/timeline"
)

// maxHeldCandidates bounds the candidates a negotiation holds: remote ones that came before the
// remote description, and our own gathered late, before we know whether the remote takes them.
const maxHeldCandidates = 64

// negotiation is one peer connection while it is being set up: the signalling (complete or trickled
// descriptions, as the remote understands them) and the watch for ICE failure. Its methods run on the
// goroutine of DialPeer or AcceptPeer.
type negotiation struct {
	t    *Transport
	p    *Peer
	send func(context.Context, string) error
	recv <-chan string

	stunOn, turnOn bool
	localCand      chan webrtc.ICECandidateInit // gathered by pion; dropped when full
	gathered       <-chan struct{}              // closed when our gathering is complete
	hostSeen       chan struct{}                // closed when pion gathered our first host candidate
	hostOnce       sync.Once

	trickle     bool            // our candidates go to the remote as they come
	inSDP       map[string]bool // candidates our description carried
	held        []webrtc.ICECandidateInit
	haveRemote  bool
	pendingCand []webrtc.ICECandidateInit
	localKinds  CandidateKinds
	remoteKinds CandidateKinds
	watch       iceWatch
	tl          *timeline.Timeline // nil unless the caller's context carries one
	firstCheck  bool               // our description says we select on the first check (firstcheck.go)
	ufrag       string             // our ICE ufrag while the handler may select on its first check
}

func (t *Transport) newNegotiation(opt Options, send func(context.Context, string) error, recv <-chan string,
	minWait time.Duration) (*negotiation, error) {
	servers := t.iceServers()
	p, err := t.newPeer(servers)
	if err != nil {
		return nil, err
	}
	n := &negotiation{
		t: t, p: p, send: send, recv: recv,
		localCand: make(chan webrtc.ICECandidateInit, maxHeldCandidates),
		hostSeen:  make(chan struct{}),
		watch:     iceWatch{minWait: minWait},
	}
	n.stunOn, n.turnOn = serverKinds(servers)
	p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		if c.Typ == webrtc.ICECandidateTypeHost {
			n.hostOnce.Do(func() { close(n.hostSeen) })
		}
		select {
		case n.localCand <- c.ToJSON():
		default:
		}
	})
	if tl := opt.timeline; tl != nil {
		if sctp := p.pc.SCTP(); sctp != nil && sctp.Transport() != nil {
			sctp.Transport().OnStateChange(func(st webrtc.DTLSTransportState) {
				if st == webrtc.DTLSTransportStateConnected {
					tl.Mark("rtc: DTLS connected")
				}
			})
		}
	}
	n.tl = opt.timeline
	if f := opt.ICEConnected; f != nil {
		var once sync.Once
		p.pc.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) {
			if st == webrtc.ICEConnectionStateConnected || st == webrtc.ICEConnectionStateCompleted {
				once.Do(f)
			}
		})
	}
	return n, nil
}

func (n *negotiation) dial(ctx context.Context, label string) (*conn, error) {
	if label == "" {
		label = randomLabel()
	}
	ordered := true
	dc, err := n.p.pc.CreateDataChannel(label, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return nil, fmt.Errorf("create data channel: %w", err)
	}
	n.p.mu.Lock()
	n.p.firstDC = dc
	n.p.mu.Unlock()
	n.p.watch(dc, nil)
	offer, err := n.p.pc.CreateOffer(nil)
	if err != nil {
		return nil, fmt.Errorf("create offer: %w", err)
	}
	n.tl.Mark("rtc: offer created")
	n.firstCheck = true // used if the answer says so too
	// The offer goes out with our host candidates; the others (server-reflexive, relayed: a round trip
	// to a STUN server or two to a TURN server away) follow as candidate signals, which any answerer
	// takes, simple-peer whatever its own trickle setting (docs/extensions.md).
	if err := n.sendDescription(ctx, offer, waitHost); err != nil {
		return nil, err
	}
	n.trickle = true
	return n.await(ctx, SignalAnswer)
}

func (n *negotiation) accept(ctx context.Context, offer Signal) (*conn, error) {
	n.noteRemote(offer)
	if err := n.setRemote(webrtc.SDPTypeOffer, offer.SDP); err != nil {
		return nil, err
	}
	answer, err := n.p.pc.CreateAnswer(nil)
	if err != nil {
		return nil, fmt.Errorf("create answer: %w", err)
	}
	// A peer of ours takes the answer at once and our candidates as they come; the prototype wants
	// them all in the answer.
	n.trickle = offer.Ours()
	if offer.ICE == ICEFirstCheck {
		n.firstCheck = true
		n.selectOnFirstCheck(answer.SDP)
	}
	wait := waitAll
	if n.trickle {
		wait = waitNone
	}
	if err := n.sendDescription(ctx, answer, wait); err != nil {
		return nil, err
	}
	return n.await(ctx, "")
}

// noteRemote records what a remote description's marks tell about the remote.
func (n *negotiation) noteRemote(sig Signal) {
	n.p.mu.Lock()
	n.p.remoteExt = sig.P2PCDN
	n.p.remoteRcvbuf = sig.RecvBuffer
	n.p.mu.Unlock()
}

// gatherWait is what a description waits for before it is sent.
type gatherWait int

const (
	waitNone gatherWait = iota // nothing: the remote takes our candidates as they come
	waitHost                   // our host candidates, then hostSettle; the rest are trickled
	waitAll                    // every candidate (bounded by gatherTimeout): the remote wants complete SDP
)

// hostSettle is how long, after pion gathered our first host candidate, we wait for the other host
// candidates (other interfaces) before sending an offer. pion makes them all at once, well within it;
// a late one is trickled.
const hostSettle = 10 * time.Millisecond

// sendDescription applies desc and sends it, marked as ours, after waiting (bounded by gatherTimeout)
// for our candidates as wait says.
func (n *negotiation) sendDescription(ctx context.Context, desc webrtc.SessionDescription, wait gatherWait) error {
	pc := n.p.pc
	n.gathered = webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		return fmt.Errorf("set local %s: %w", desc.Type, err)
	}
	var early []webrtc.ICECandidateInit // taken from localCand while waiting
	switch wait {
	case waitAll:
		var err error
		if early, err = n.awaitGathering(ctx); err != nil {
			return err
		}
	case waitHost:
		if err := n.awaitHost(ctx); err != nil {
			return err
		}
	}
	local := pc.LocalDescription()
	n.inSDP = make(map[string]bool)
	for line := range strings.Lines(local.SDP) {
		if c, ok := strings.CutPrefix(strings.TrimSpace(line), "a="); ok && strings.HasPrefix(c, "candidate:") {
			n.inSDP[c] = true
			n.localKinds |= candidateKind(c)
		}
	}
	sig := Signal{Type: local.Type.String(), SDP: local.SDP, Trickle: true, P2PCDN: ExtensionLevel, RecvBuffer: n.t.rcvbuf}
	if n.firstCheck {
		sig.ICE = ICEFirstCheck
	}
	if err := n.send(ctx, sig.String()); err != nil {
		return fmt.Errorf("send %s: %w", local.Type, err)
	}
	n.tl.Mark("rtc: " + local.Type.String() + " sent")
	for _, c := range early { // those the description missed are held or trickled
		n.localCandidate(ctx, c)
	}
	return nil
}

// awaitHost waits until pion has our host candidates: the first, then hostSettle for those of other
// interfaces (or until gathering completes, gatherTimeout at most). The others are trickled.
func (n *negotiation) awaitHost(ctx context.Context) error {
	timer := time.NewTimer(gatherTimeout)
	defer timer.Stop()
	host := n.hostSeen
	for {
		select {
		case <-n.gathered:
			return nil
		case <-host:
			host = nil
			timer.Reset(hostSettle)
		case <-timer.C:
			if !isClosed(n.hostSeen) {
				n.t.log.Debug("rtc: sending an offer without host candidates")
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// awaitGathering waits until our candidates are complete, or settled: a
// server gave us one (server-reflexive or relayed) and none came for
// gatherQuiet, which is how a STUN or TURN server that never answers (UDP
// blocked) looks; or gatherTimeout passed. It returns the candidates it took
// from localCand meanwhile.
func (n *negotiation) awaitGathering(ctx context.Context) ([]webrtc.ICECandidateInit, error) {
	timer := time.NewTimer(gatherTimeout)
	defer timer.Stop()
	var quiet <-chan time.Time
	var early []webrtc.ICECandidateInit
	for {
		select {
		case <-n.gathered:
			return early, nil
		case <-timer.C:
			n.t.log.Debug("rtc: sending a description before gathering completed")
			return early, nil
		case <-quiet:
			n.t.log.Debug("rtc: sending a description with the candidates so far: a server is not answering")
			return early, nil
		case c := <-n.localCand:
			early = append(early, c)
			if k := candidateKind(c.Candidate); k&fromServers != 0 || quiet != nil {
				quiet = time.After(gatherQuiet)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// localCandidate handles one candidate pion gathered after our description was made.
func (n *negotiation) localCandidate(ctx context.Context, c webrtc.ICECandidateInit) {
	if n.inSDP[c.Candidate] {
		return
	}
	n.localKinds |= candidateKind(c.Candidate)
	if !n.trickle {
		if len(n.held) < maxHeldCandidates {
			n.held = append(n.held, c)
		}
		return
	}
	if err := n.send(ctx, Signal{Type: SignalCandidate, Candidate: &c}.String()); err != nil {
		n.t.log.Debug("rtc: cannot trickle a candidate", "err", err)
	}
}

// startTrickle sends the candidates held back and the later ones as they come.
func (n *negotiation) startTrickle(ctx context.Context) {
	n.trickle = true
	held := n.held
	n.held = nil
	for _, c := range held {
		n.localCandidate(ctx, c)
	}
}

func (n *negotiation) setRemote(typ webrtc.SDPType, sdp string) error {
	if n.t.cfg.Loopback {
		sdp = filterLoopbackSDP(sdp)
	}
	if err := n.p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: typ, SDP: sdp}); err != nil {
		return fmt.Errorf("%w: remote %s: %w", ErrBadSignal, typ, err)
	}
	n.remoteKinds |= sdpCandidateKinds(sdp)
	n.haveRemote = true
	n.watch.since = time.Now()
	for _, c := range n.pendingCand {
		n.addCandidate(c)
	}
	n.pendingCand = nil
	return nil
}

func (n *negotiation) addCandidate(c webrtc.ICECandidateInit) {
	if c.Candidate == "" { // end-of-candidates marker
		return
	}
	if n.t.cfg.Loopback && !loopbackCandidate(c.Candidate) {
		return
	}
	if !n.haveRemote {
		if len(n.pendingCand) < maxHeldCandidates { // bound what a peer can make us hold
			n.pendingCand = append(n.pendingCand, c)
		}
		return
	}
	n.remoteKinds |= candidateKind(c.Candidate)
	if err := n.p.pc.AddICECandidate(c); err != nil {
		// Browsers send candidate kinds we may not support; the others can still connect.
		n.t.log.Debug("rtc: ignoring remote candidate", "candidate", c.Candidate, "err", err)
	}
}

// await applies signals from recv until the first data channel opens, trickling our candidates where
// the remote takes them, and gives up as soon as ICE has failed. want is the description type still
// expected ("" when none).
func (n *negotiation) await(ctx context.Context, want string) (*conn, error) {
	tick := time.NewTicker(iceWatchInterval)
	defer tick.Stop()
	recv := n.recv
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-n.p.done:
			if n.p.pc.ICEConnectionState() == webrtc.ICEConnectionStateFailed {
				return nil, n.iceError()
			}
			return nil, fmt.Errorf("peer connection ended before the data channel opened: %w", n.p.err())
		case c := <-n.p.first:
			n.tl.Mark("rtc: data channel open")
			return c, nil
		case c := <-n.localCand:
			n.localCandidate(ctx, c)
		case now := <-tick.C:
			if n.watch.observe(n.p.pc.GetStats(), isClosed(n.gathered), now) {
				return nil, n.iceError()
			}
		case raw, ok := <-recv:
			if !ok {
				if want != "" {
					return nil, fmt.Errorf("signalling ended before the %s arrived", want)
				}
				recv = nil // keep waiting for the channel to open
				continue
			}
			sig, err := ParseSignal(raw)
			if err != nil {
				return nil, err
			}
			switch sig.Type {
			case SignalCandidate:
				n.addCandidate(*sig.Candidate)
			case SignalAnswer, SignalOffer:
				if sig.Type != want {
					return nil, fmt.Errorf("%w: unexpected %s", ErrBadSignal, sig.Type)
				}
				n.tl.Mark("rtc: " + sig.Type + " received")
				if sig.ICE == ICEFirstCheck && n.firstCheck {
					n.selectOnFirstCheck(n.p.pc.LocalDescription().SDP)
				}
				n.noteRemote(sig)
				if err := n.setRemote(webrtc.NewSDPType(sig.Type), sig.SDP); err != nil {
					return nil, err
				}
				want = ""
				if sig.Ours() {
					n.startTrickle(ctx)
				}
			default:
				n.t.log.Debug("rtc: ignoring signal", "type", sig.Type)
			}
		}
	}
}

func (n *negotiation) iceError() error {
	return &ICEError{
		Local:    n.localKinds | n.watch.local,
		Remote:   n.remoteKinds | n.watch.remote,
		STUN:     n.stunOn,
		TURN:     n.turnOn,
		NoRemote: n.watch.sig.pairs == 0,
	}
}

func isClosed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// selectOnFirstCheck lets the transport select this connection's pair on the first check that reaches
// it (both sides said they do, firstcheck.go); localSDP gives our ICE ufrag.
func (n *negotiation) selectOnFirstCheck(localSDP string) {
	n.ufrag = sdpUfrag(localSDP)
	n.t.firstCheckOn(n.ufrag)
}

// done forgets what the negotiation registered with the transport.
func (n *negotiation) done() {
	if n.ufrag != "" {
		n.t.firstCheckOff(n.ufrag)
	}
}

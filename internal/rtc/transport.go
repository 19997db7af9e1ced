package rtc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/p2pcdn/p2pcdn/internal/timeline"
)

// ErrClosed is returned by a Transport used after Close.
var ErrClosed = errors.New("rtc: transport closed")

// Tuning of ICE (measured with BenchmarkSetupVariant, see doc.go).
const (
	// relayAcceptanceWait holds back nominating a relayed pair for a moment after checks start, so that
	// a direct path found a little later wins (relayed bytes cost the mediator). Other pairs are taken
	// as soon as they work. BenchmarkSetupVariant: between symmetric NATs, where only the relay works,
	// 300 ms costs about 0.09 s over 100 ms; in the NAT lab under heavy load (load average 30+ on 2
	// cores), 100 ms once let two cone NATs settle for the relay.
	relayAcceptanceWait = 300 * time.Millisecond
	// iceDisconnected and iceFailed: an open connection that hears nothing for 4 s is disconnected and
	// after 10 s failed. pion also fails checks that found nothing after their sum (the watch in
	// icefail.go usually ends a hopeless negotiation much sooner).
	iceDisconnected = 4 * time.Second
	iceFailed       = 6 * time.Second
	iceKeepalive    = 2 * time.Second
	// gatherTimeout bounds the wait for our candidates before a description is sent (STUN or TURN
	// servers that do not answer, e.g. UDP blocked): an offer's host candidates, or every candidate of
	// an answer to the prototype's unmarked offer, which gets what was gathered by then.
	gatherTimeout = 2 * time.Second
	// gatherQuiet: once a server gave us a candidate, a description is sent when no other came for
	// this long (the rest of the servers are probably unreachable; later ones are trickled to ours).
	gatherQuiet = 300 * time.Millisecond
)

// Transport makes WebRTC data-channel connections. Use one per process: it owns the pion API and its
// settings, and Close tears down every connection it made.
type Transport struct {
	cfg   Config
	api   *webrtc.API
	log   *slog.Logger
	tcp   ice.TCPMux // ICE-TCP passive candidates; nil without Config.ICETCPListener
	tcpLn net.Listener
	// rcvbuf is what our ICE UDP sockets hold, advertised in our descriptions (netbuf.go); 0 if unknown
	rcvbuf int
	// paced are the destinations our ICE UDP sockets pace packets to (wirepace.go); unused with Config.Net
	paced *pacedDests

	mu         sync.Mutex
	closed     bool
	peers      map[*Peer]struct{} // negotiating or open
	firstCheck map[string]bool    // local ICE ufrags that select on their first check (firstcheck.go)
	wg         sync.WaitGroup     // closers started from pion callbacks
}

// New builds a Transport from cfg.
func New(cfg Config) (*Transport, error) {
	cfg = cfg.withDefaults()
	var se webrtc.SettingEngine
	se.DetachDataChannels()
	se.SetSCTPMaxMessageSize(uint32(cfg.MaxMessageSize))
	se.SetSCTPMaxReceiveBufferSize(uint32(cfg.SCTPReceiveBuffer))
	se.SetSCTPRTOMax(cfg.SCTPRTOMax)
	// Round trips saved on every connection (measured across a WAN delay: internal/e2e/wan). pion never
	// lets the congestion window fall below SCTPMinCwnd, so it is also the initial window.
	se.SetSCTPMinCwnd(uint32(cfg.SCTPMinCwnd))
	// SNAP (draft-hancke-tsvwg-snap): the SCTP INIT rides in the SDP (a=sctp-init), so the association
	// is up as soon as DTLS is, without its own two round trips. Used only when the remote's description
	// carries one too; otherwise SCTP hand shakes as usual.
	se.EnableSctpSnap(true)
	// No DTLS HelloVerifyRequest when we are the DTLS server: its cookie guards against spoofed source
	// addresses, which ICE's authenticated checks have already ruled out on this path. Saves a round trip.
	se.SetDTLSInsecureSkipHelloVerify(true)
	se.SetHostAcceptanceMinWait(0)
	se.SetSrflxAcceptanceMinWait(0)
	se.SetPrflxAcceptanceMinWait(0)
	se.SetRelayAcceptanceMinWait(relayAcceptanceWait)
	se.SetICETimeouts(iceDisconnected, iceFailed, iceKeepalive)
	rcvbuf := 0
	paced := &pacedDests{}
	if cfg.Net != nil {
		se.SetNet(cfg.Net)
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	} else {
		n, err := newBufferedNet(max(cfg.SocketBuffer, 0), paced)
		if err != nil {
			return nil, err
		}
		se.SetNet(n)
		rcvbuf = n.rcvbuf
	}
	t := &Transport{cfg: cfg, log: cfg.Logger, peers: make(map[*Peer]struct{}), rcvbuf: rcvbuf, paced: paced}
	se.SetICEBindingRequestHandler(t.onBindingRequest) // first-check selection (firstcheck.go)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6,
		webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6}
	if cfg.Loopback {
		lo := loopbackInterfaces()
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return lo[name] })
		se.SetIPFilter(isLoopback4)
		// Also covers peer-reflexive candidates: Chromium in a loopback-only namespace sends its checks
		// from 127.0.0.1 without announcing that address, and those must be accepted.
		se.SetRemoteIPFilter(isLoopback4)
		networks = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
		if cfg.ICETCPListener != nil {
			networks = append(networks, webrtc.NetworkTypeTCP4) // passive ICE-TCP candidates
		}
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	se.SetNetworkTypes(networks)
	if cfg.ICETCPListener != nil {
		t.tcpLn = cfg.ICETCPListener
		t.tcp = ice.NewTCPMuxDefault(ice.TCPMuxParams{Listener: cfg.ICETCPListener, ReadBufferSize: 64})
		se.SetICETCPMux(t.tcp)
	}
	if cfg.tune != nil {
		cfg.tune(&se)
	}
	t.api = webrtc.NewAPI(webrtc.WithSettingEngine(se))
	return t, nil
}

// iceServers returns the configured servers followed by those ExtraICEServers gives now.
func (t *Transport) iceServers() []webrtc.ICEServer {
	if t.cfg.ExtraICEServers == nil {
		return t.cfg.ICEServers
	}
	return slices.Concat(t.cfg.ICEServers, t.cfg.ExtraICEServers())
}

func isLoopback4(ip net.IP) bool { return ip.To4() != nil && ip.IsLoopback() }

// Close closes every connection made by t, including those still negotiating, and the ICE-TCP
// listener. Later Dial and Accept calls fail with ErrClosed.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	peers := t.peers
	t.peers = map[*Peer]struct{}{}
	t.mu.Unlock()
	var errs []error
	for p := range peers {
		errs = append(errs, p.Close())
	}
	t.wg.Wait()
	if t.tcp != nil {
		errs = append(errs, t.tcp.Close())
	}
	return errors.Join(errs...)
}

func (t *Transport) forget(p *Peer) {
	t.mu.Lock()
	delete(t.peers, p)
	t.mu.Unlock()
}

// Peers returns how many peer connections are negotiating or open.
func (t *Transport) Peers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.peers)
}

// Options adjust one negotiation. The zero value is fine.
type Options struct {
	// Label is the first channel's label when dialing; "" means a random one, as the prototype's.
	Label string
	// ICEConnected, if set, is called once, from pion's goroutine, when ICE has found a working path
	// (the remote has proved it is reachable), before DTLS and the channel are up.
	ICEConnected func()

	timeline *timeline.Timeline // marks DTLS and the channel (withTimeline)
}

// Dial is the offerer side: it creates the peer connection and one ordered reliable data channel,
// gathers candidates, sends the offer through send, then applies the answer and any trickle
// candidates read from recv, and returns once the channel is open. Closing the Conn closes the peer
// connection. On error or ctx cancellation the peer connection is closed; an ICE failure is an
// *ICEError.
func (t *Transport) Dial(ctx context.Context, send func(ctx context.Context, signal string) error,
	recv <-chan string) (Conn, error) {
	_, c, err := t.DialPeer(ctx, Options{}, send, recv)
	if err != nil {
		return nil, err
	}
	c.(*conn).owner = true
	return c, nil
}

// Accept is the answerer side for a received offer signal: it applies the offer, sends the answer
// through send, applies trickle candidates read from recv, and returns once the offerer's data channel
// is open. Closing the Conn closes the peer connection. On error or ctx cancellation the peer
// connection is closed; an ICE failure is an *ICEError.
func (t *Transport) Accept(ctx context.Context, offer string, send func(ctx context.Context, signal string) error,
	recv <-chan string) (Conn, error) {
	_, c, err := t.AcceptPeer(ctx, offer, Options{}, send, recv)
	if err != nil {
		return nil, err
	}
	c.(*conn).owner = true
	return c, nil
}

// DialPeer is Dial returning the peer connection as well, for more channels on it. The offer is
// marked as ours (docs/extensions.md); it carries our host candidates, and later ones are trickled.
func (t *Transport) DialPeer(ctx context.Context, opt Options, send func(ctx context.Context, signal string) error,
	recv <-chan string) (*Peer, Conn, error) {
	n, err := t.newNegotiation(withTimeline(ctx, opt), send, recv, iceMinDial)
	if err != nil {
		return nil, nil, err
	}
	c, err := n.dial(ctx, opt.Label)
	n.done()
	if err != nil {
		_ = n.p.Close()
		return nil, nil, fmt.Errorf("rtc dial: %w", err)
	}
	return n.p, c, nil
}

// AcceptPeer is Accept returning the peer connection as well. Toward an offer marked as ours the
// answer goes out at once and our candidates follow as trickle signals; toward the prototype's
// unmarked offers the answer carries every candidate.
func (t *Transport) AcceptPeer(ctx context.Context, offer string, opt Options,
	send func(ctx context.Context, signal string) error, recv <-chan string) (*Peer, Conn, error) {
	sig, err := ParseSignal(offer)
	if err != nil {
		return nil, nil, fmt.Errorf("rtc accept: %w", err)
	}
	if sig.Type != SignalOffer {
		return nil, nil, fmt.Errorf("rtc accept: %w: got %q signal, want offer", ErrBadSignal, sig.Type)
	}
	n, err := t.newNegotiation(withTimeline(ctx, opt), send, recv, iceMinAccept)
	if err != nil {
		return nil, nil, err
	}
	c, err := n.accept(ctx, sig)
	n.done()
	if err != nil {
		_ = n.p.Close()
		return nil, nil, fmt.Errorf("rtc accept: %w", err)
	}
	return n.p, c, nil
}

// withTimeline makes opt mark ICE, DTLS and the channel on the timeline ctx carries, if any.
func withTimeline(ctx context.Context, opt Options) Options {
	tl := timeline.FromContext(ctx)
	if tl == nil {
		return opt
	}
	f := opt.ICEConnected
	opt.ICEConnected = func() {
		tl.Mark("rtc: ICE connected")
		if f != nil {
			f()
		}
	}
	opt.timeline = tl
	return opt
}

func randomLabel() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

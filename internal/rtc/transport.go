package rtc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/pion/datachannel"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// ErrClosed is returned by a Transport used after Close.
var ErrClosed = errors.New("rtc: transport closed")

// Transport makes WebRTC data-channel connections. Use one per process: it owns the pion API and its
// settings, and Close tears down every connection it made.
type Transport struct {
	cfg Config
	api *webrtc.API
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	pcs    map[*webrtc.PeerConnection]struct{} // negotiating
	conns  map[*conn]struct{}                  // open
	wg     sync.WaitGroup                      // closers started from pion callbacks
}

// New builds a Transport from cfg.
func New(cfg Config) (*Transport, error) {
	cfg = cfg.withDefaults()
	var se webrtc.SettingEngine
	se.DetachDataChannels()
	se.SetSCTPMaxMessageSize(uint32(cfg.MaxMessageSize))
	se.SetSCTPMaxReceiveBufferSize(uint32(cfg.SCTPReceiveBuffer))
	se.SetSCTPRTOMax(cfg.SCTPRTOMax)
	switch {
	case cfg.net != nil:
		se.SetNet(cfg.net)
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	case cfg.SocketBuffer > 0:
		n, err := newBufferedNet(cfg.SocketBuffer)
		if err != nil {
			return nil, err
		}
		se.SetNet(n)
	}
	if cfg.Loopback {
		lo := loopbackInterfaces()
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return lo[name] })
		se.SetIPFilter(isLoopback4)
		// Also covers peer-reflexive candidates: Chromium in a loopback-only namespace sends its checks
		// from 127.0.0.1 without announcing that address, and those must be accepted.
		se.SetRemoteIPFilter(isLoopback4)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	if cfg.tune != nil {
		cfg.tune(&se)
	}
	return &Transport{
		cfg:   cfg,
		api:   webrtc.NewAPI(webrtc.WithSettingEngine(se)),
		log:   cfg.Logger,
		pcs:   make(map[*webrtc.PeerConnection]struct{}),
		conns: make(map[*conn]struct{}),
	}, nil
}

// iceServers returns the configured servers followed by those ExtraICEServers gives now.
func (t *Transport) iceServers() []webrtc.ICEServer {
	if t.cfg.ExtraICEServers == nil {
		return t.cfg.ICEServers
	}
	return slices.Concat(t.cfg.ICEServers, t.cfg.ExtraICEServers())
}

func isLoopback4(ip net.IP) bool { return ip.To4() != nil && ip.IsLoopback() }

// Close closes every connection made by t, including those still negotiating. Later Dial and Accept
// calls fail with ErrClosed.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	pcs := t.pcs
	conns := t.conns
	t.pcs = map[*webrtc.PeerConnection]struct{}{}
	t.conns = map[*conn]struct{}{}
	t.mu.Unlock()
	var errs []error
	for c := range conns {
		errs = append(errs, c.Close())
	}
	for pc := range pcs {
		errs = append(errs, pc.GracefulClose())
	}
	t.wg.Wait()
	return errors.Join(errs...)
}

// Dial is the offerer side: it creates the peer connection and one ordered reliable data channel,
// gathers all candidates, sends the complete offer through send, then applies the answer and any
// trickle candidates read from recv, and returns once the channel is open. On error or ctx
// cancellation the peer connection is closed.
func (t *Transport) Dial(ctx context.Context, send func(ctx context.Context, signal string) error,
	recv <-chan string) (Conn, error) {
	s, err := t.newSession()
	if err != nil {
		return nil, err
	}
	c, err := s.dial(ctx, send, recv)
	if err != nil {
		s.abort()
		return nil, fmt.Errorf("rtc dial: %w", err)
	}
	return c, nil
}

// Accept is the answerer side for a received offer signal: it applies the offer, sends a complete
// answer through send, applies trickle candidates read from recv, and returns once the offerer's data
// channel is open. On error or ctx cancellation the peer connection is closed.
func (t *Transport) Accept(ctx context.Context, offer string, send func(ctx context.Context, signal string) error,
	recv <-chan string) (Conn, error) {
	sig, err := ParseSignal(offer)
	if err != nil {
		return nil, fmt.Errorf("rtc accept: %w", err)
	}
	if sig.Type != SignalOffer {
		return nil, fmt.Errorf("rtc accept: %w: got %q signal, want offer", ErrBadSignal, sig.Type)
	}
	s, err := t.newSession()
	if err != nil {
		return nil, err
	}
	c, err := s.accept(ctx, sig.SDP, send, recv)
	if err != nil {
		s.abort()
		return nil, fmt.Errorf("rtc accept: %w", err)
	}
	return c, nil
}

// session is one peer connection while it negotiates.
type session struct {
	t  *Transport
	pc *webrtc.PeerConnection

	opened chan datachannel.ReadWriteCloserDeadliner // first detached channel
	failed chan struct{}                             // closed when the PC fails or closes
	dc     *webrtc.DataChannel                       // set before opened fires

	mu          sync.Mutex
	failedOnce  bool
	c           *conn // set once open: later failures close it
	haveRemote  bool
	pendingCand []webrtc.ICECandidateInit
}

func (t *Transport) newSession() (*session, error) {
	servers := t.iceServers()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	pc, err := t.api.NewPeerConnection(webrtc.Configuration{ICEServers: servers})
	if err != nil {
		return nil, fmt.Errorf("create peer connection: %w", err)
	}
	s := &session{
		t:      t,
		pc:     pc,
		opened: make(chan datachannel.ReadWriteCloserDeadliner, 1),
		failed: make(chan struct{}),
	}
	t.pcs[pc] = struct{}{}
	pc.OnConnectionStateChange(s.onState)
	return s, nil
}

func (s *session) onState(st webrtc.PeerConnectionState) {
	if st != webrtc.PeerConnectionStateFailed && st != webrtc.PeerConnectionStateClosed {
		return
	}
	s.mu.Lock()
	first := !s.failedOnce
	s.failedOnce = true
	c := s.c
	s.mu.Unlock()
	if first {
		close(s.failed)
	}
	if c != nil && st == webrtc.PeerConnectionStateFailed {
		// Closing waits for pion's goroutines, so it must not run inside pion's callback.
		s.t.mu.Lock()
		defer s.t.mu.Unlock()
		if !s.t.closed { // otherwise Transport.Close closes it
			s.t.wg.Go(func() { _ = c.Close() })
		}
	}
}

// watch arranges for dc, once open, to be detached and handed to the waiting dial/accept.
func (s *session) watch(dc *webrtc.DataChannel) {
	dc.OnOpen(func() {
		rwc, err := dc.DetachWithDeadline()
		if err != nil {
			s.t.log.Warn("rtc: cannot detach data channel", "err", err)
			return
		}
		s.mu.Lock()
		s.dc = dc
		s.mu.Unlock()
		select {
		case s.opened <- rwc:
		default: // only one channel per connection is used
			_ = rwc.Close()
		}
	})
}

func (s *session) abort() {
	s.t.mu.Lock()
	delete(s.t.pcs, s.pc)
	s.t.mu.Unlock()
	if err := s.pc.GracefulClose(); err != nil {
		s.t.log.Debug("rtc: closing failed connection", "err", err)
	}
}

func randomLabel() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

func (s *session) dial(ctx context.Context, send func(context.Context, string) error, recv <-chan string) (*conn, error) {
	ordered := true
	dc, err := s.pc.CreateDataChannel(randomLabel(), &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return nil, fmt.Errorf("create data channel: %w", err)
	}
	s.watch(dc)
	offer, err := s.pc.CreateOffer(nil)
	if err != nil {
		return nil, fmt.Errorf("create offer: %w", err)
	}
	if err := s.sendLocal(ctx, offer, send); err != nil {
		return nil, err
	}
	return s.await(ctx, recv, SignalAnswer)
}

func (s *session) accept(ctx context.Context, offerSDP string, send func(context.Context, string) error, recv <-chan string) (*conn, error) {
	s.pc.OnDataChannel(s.watch)
	if err := s.setRemote(webrtc.SDPTypeOffer, offerSDP); err != nil {
		return nil, err
	}
	answer, err := s.pc.CreateAnswer(nil)
	if err != nil {
		return nil, fmt.Errorf("create answer: %w", err)
	}
	if err := s.sendLocal(ctx, answer, send); err != nil {
		return nil, err
	}
	return s.await(ctx, recv, "")
}

// sendLocal applies desc, waits for candidate gathering to finish and sends the complete SDP: we never
// trickle, so peers that only understand complete offers/answers (the prototype) work.
func (s *session) sendLocal(ctx context.Context, desc webrtc.SessionDescription, send func(context.Context, string) error) error {
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(desc); err != nil {
		return fmt.Errorf("set local %s: %w", desc.Type, err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	local := s.pc.LocalDescription()
	if err := send(ctx, Signal{Type: local.Type.String(), SDP: local.SDP}.String()); err != nil {
		return fmt.Errorf("send %s: %w", local.Type, err)
	}
	return nil
}

func (s *session) setRemote(typ webrtc.SDPType, sdp string) error {
	if s.t.cfg.Loopback {
		sdp = filterLoopbackSDP(sdp)
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: typ, SDP: sdp}); err != nil {
		return fmt.Errorf("%w: remote %s: %w", ErrBadSignal, typ, err)
	}
	s.haveRemote = true
	for _, c := range s.pendingCand {
		s.addCandidate(c)
	}
	s.pendingCand = nil
	return nil
}

func (s *session) addCandidate(c webrtc.ICECandidateInit) {
	if c.Candidate == "" { // end-of-candidates marker
		return
	}
	if s.t.cfg.Loopback && !loopbackCandidate(c.Candidate) {
		return
	}
	if !s.haveRemote {
		if len(s.pendingCand) < 64 { // bound what a peer can make us hold
			s.pendingCand = append(s.pendingCand, c)
		}
		return
	}
	if err := s.pc.AddICECandidate(c); err != nil {
		// Browsers send candidate kinds we may not support; the others can still connect.
		s.t.log.Debug("rtc: ignoring remote candidate", "candidate", c.Candidate, "err", err)
	}
}

// await applies signals from recv until the data channel opens. want is the description type still
// expected ("" when none).
func (s *session) await(ctx context.Context, recv <-chan string, want string) (*conn, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.failed:
			return nil, errors.New("peer connection failed before the data channel opened")
		case rwc := <-s.opened:
			return s.open(rwc)
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
				s.addCandidate(*sig.Candidate)
			case SignalAnswer, SignalOffer:
				if sig.Type != want {
					return nil, fmt.Errorf("%w: unexpected %s", ErrBadSignal, sig.Type)
				}
				if err := s.setRemote(webrtc.NewSDPType(sig.Type), sig.SDP); err != nil {
					return nil, err
				}
				want = ""
			default:
				s.t.log.Debug("rtc: ignoring signal", "type", sig.Type)
			}
		}
	}
}

func (s *session) open(rwc datachannel.ReadWriteCloserDeadliner) (*conn, error) {
	s.mu.Lock()
	dc := s.dc
	s.mu.Unlock()
	c := newConn(s.t, s.pc, dc, rwc, remoteAddr(s.pc))
	s.t.log.Debug("rtc: data channel open", "remote", c.remote)
	s.t.mu.Lock()
	delete(s.t.pcs, s.pc)
	if s.t.closed {
		s.t.mu.Unlock()
		_ = c.Close()
		return nil, ErrClosed
	}
	s.t.conns[c] = struct{}{}
	s.t.mu.Unlock()
	s.mu.Lock()
	s.c = c
	failed := s.failedOnce
	s.mu.Unlock()
	if failed {
		_ = c.Close()
		return nil, errors.New("peer connection failed as the data channel opened")
	}
	return c, nil
}

func remoteAddr(pc *webrtc.PeerConnection) string {
	sctp := pc.SCTP()
	if sctp == nil || sctp.Transport() == nil {
		return "?"
	}
	pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Remote == nil {
		return "?"
	}
	if ip, err := netip.ParseAddr(pair.Remote.Address); err == nil {
		return netip.AddrPortFrom(ip, pair.Remote.Port).String()
	}
	return net.JoinHostPort(pair.Remote.Address, fmt.Sprint(pair.Remote.Port))
}

func (t *Transport) forget(c *conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

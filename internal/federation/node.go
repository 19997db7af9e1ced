package federation

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/krpc"
	alog "github.com/anacrolix/log"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
)

// HashKey is the DHT key of a full hash: the hash hex-decoded, 20 bytes,
// a standard BEP 5 info hash.
func HashKey(hash string) ([20]byte, error) {
	var k [20]byte
	if !mediation.ValidHash(hash) {
		return k, fmt.Errorf("invalid full hash %q: want 40 lowercase hex characters", hash)
	}
	_, err := hex.Decode(k[:], []byte(hash))
	return k, err
}

// RelayKey is the DHT key under which mediators announce that their peers
// are looking for hash through other mediators (see the package doc).
func RelayKey(hash string) [20]byte {
	return sha1.Sum([]byte("p2pcdn relay " + hash))
}

// newNode starts the DHT node on conn. The library starts its reader
// goroutine here; node.Close stops it.
func (f *Federation) newNode() (*dht.Server, error) {
	var id [20]byte
	if _, err := hex.Decode(id[:], []byte(f.cfg.MediatorID)); err != nil {
		return nil, fmt.Errorf("mediator id %q as DHT node id: %w", f.cfg.MediatorID, err)
	}
	cfg := dht.NewDefaultServerConfig()
	cfg.NodeId = id
	cfg.Conn = f.guard
	// The mediator id is random, not derived from our IP (BEP 42); peers that
	// enforce BEP 42 may ignore us, ours accept everyone.
	cfg.NoSecurity = true
	cfg.StartingNodes = f.startingNodes
	cfg.PeerStore = libPeerStore{f.store}
	cfg.Store = noItems{}
	cfg.DefaultWant = wants(f.conn.LocalAddr())
	cfg.SendLimiter = f.limiter
	resend := f.cfg.QueryResendDelay
	cfg.QueryResendDelay = func() time.Duration { return resend }
	cfg.Logger = slogAdapter(f.log)
	s, err := dht.NewServer(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting the DHT node: %w", err)
	}
	f.proto.node.Store(s)
	return s, nil
}

// wants picks the node lists to ask for (BEP 32) by the socket's family. On an
// IPv4 socket, asking for "n6" too returns every IPv4 node a second time as
// an IPv4-mapped IPv6 address, which doubles the queries of every walk.
func wants(local net.Addr) []krpc.Want {
	ua, ok := local.(*net.UDPAddr)
	switch {
	case !ok || ua.IP.IsUnspecified():
		return []krpc.Want{krpc.WantNodes, krpc.WantNodes6}
	case ua.IP.To4() != nil:
		return []krpc.Want{krpc.WantNodes}
	default:
		return []krpc.Want{krpc.WantNodes6}
	}
}

// startingNodes resolves the configured bootstrap nodes when the routing
// table is empty. Public routers are used only when asked for.
func (f *Federation) startingNodes() ([]dht.Addr, error) {
	hostPorts := append([]string(nil), f.cfg.Bootstrap...)
	if f.cfg.PublicBootstrap {
		hostPorts = append(hostPorts, dht.DefaultGlobalBootstrapHostPorts...)
	}
	var addrs []dht.Addr
	var errs []error
	for _, hp := range hostPorts {
		ua, err := net.ResolveUDPAddr("udp", hp)
		if err != nil {
			errs = append(errs, fmt.Errorf("bootstrap node %q: %w", hp, err))
			continue
		}
		addrs = append(addrs, dht.NewAddr(ua))
	}
	if len(addrs) == 0 {
		if len(errs) == 0 {
			return nil, errors.New("no bootstrap nodes configured")
		}
		return nil, errors.Join(errs...)
	}
	return addrs, nil
}

// traverse walks the DHT towards key, calling found for each value (an
// address announced under key) as answers arrive, our own store included.
// With announcePort > 0 it ends by announcing us under key with that port.
// It returns when the walk is done or ctx ends.
func (f *Federation) traverse(ctx context.Context, node *dht.Server, key [20]byte, announcePort int, found func(netip.AddrPort)) (contacted int, err error) {
	// The walk never asks our own node, which may hold values too.
	for _, ap := range f.store.get(key, time.Now()) {
		found(ap)
	}
	var opts []dht.AnnounceOpt
	if announcePort > 0 {
		opts = append(opts, dht.AnnouncePeer(dht.AnnouncePeerOpts{Port: announcePort}))
	}
	a, err := node.AnnounceTraversal(key, opts...)
	if err != nil {
		return 0, fmt.Errorf("DHT lookup: %w", err)
	}
	// Closing and draining waits for the library's goroutine of this walk.
	defer func() {
		a.Close()
		for range a.Peers {
		}
	}()
	for {
		select {
		case pv, ok := <-a.Peers:
			if !ok {
				return int(a.NumContacted()), nil
			}
			for _, p := range pv.Peers {
				if ap, ok := addrPortOf(p.IP, p.Port); ok {
					found(ap)
				}
			}
		case <-ctx.Done():
			return int(a.NumContacted()), ctx.Err()
		}
	}
}

// slogAdapter sends the library's logs to slog. Its debug chatter stays at
// debug level.
func slogAdapter(l *slog.Logger) alog.Logger {
	lg := alog.NewLogger("dht")
	lg.SetHandlers(slogHandler{l})
	// The library filters before building records; let through what slog
	// would keep.
	level := alog.Warning
	switch {
	case l.Enabled(context.Background(), slog.LevelDebug):
		level = alog.Debug
	case l.Enabled(context.Background(), slog.LevelInfo):
		level = alog.Info
	}
	return lg.WithFilterLevel(level)
}

type slogHandler struct{ l *slog.Logger }

func (h slogHandler) Handle(r alog.Record) {
	level := slog.LevelDebug
	switch r.Level {
	case alog.Info:
		level = slog.LevelInfo
	case alog.Warning:
		level = slog.LevelWarn
	case alog.Error, alog.Critical:
		level = slog.LevelError
	}
	if !h.l.Enabled(context.Background(), level) {
		return
	}
	h.l.Log(context.Background(), level, r.Msg.String(), "component", "dht")
}

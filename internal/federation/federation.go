package federation

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
)

// LocalMediator is what the federation needs of the local mediator server;
// *mediator.Server implements it.
type LocalMediator interface {
	// LocalHashes returns every hash with at least one local seeder.
	LocalHashes() []string
	// DeliverSignal hands a signal from a remote peer to a local one.
	DeliverSignal(hash, from, to, data string) bool
}

// Config configures a Federation. Mediator, MediatorID and PublicPort are
// required; zero values of the rest mean the defaults given.
type Config struct {
	// Mediator is the local mediator server.
	Mediator LocalMediator
	// MediatorID is our mediator id (40 hex), also our DHT node id.
	MediatorID string
	// PublicPort is our Socket.IO port, announced in the DHT.
	PublicPort int
	// DHTListen is the UDP address of our DHT node; empty means ":0"
	// (every interface, a free port).
	DHTListen string
	// PacketConn, when set, is the UDP socket the DHT node uses instead of
	// listening on DHTListen: the mediator shares one port between the DHT
	// and STUN/TURN and hands the DHT its share. The Federation closes it.
	PacketConn net.PacketConn
	// Bootstrap lists host:port of DHT nodes to join through. Empty means
	// none: the node then only learns of nodes that contact it.
	Bootstrap []string
	// PublicBootstrap adds the well-known public DHT routers to Bootstrap.
	// Off by default so a mediator never reaches the internet by itself.
	PublicBootstrap bool
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the federation's metrics (DHT keys announced and
	// stored, 40-byte queries, dropped packets, links); nil keeps none.
	Registerer prometheus.Registerer

	// ScanInterval is how often LocalHashes is polled for hashes to start
	// or stop announcing (default 2 s); HashesChanged triggers a scan early.
	ScanInterval time.Duration
	// ReannounceInterval is how often a hash is announced again while it
	// has local seeders (default 15 min, half of the usual 30 min expiry).
	ReannounceInterval time.Duration
	// PeerTTL is how long our node keeps other nodes' announcements
	// (default 30 min).
	PeerTTL time.Duration
	// LookupInterval is the least time between two DHT lookups of one hash
	// while local peers keep asking for it (default 30 s); after a lookup
	// that found nobody the next comes sooner (2 s, doubling up to this).
	LookupInterval time.Duration
	// AskInterval is the least time between two get_peers for one hash on
	// one replication link (default 1 s, what peers use).
	AskInterval time.Duration
	// IdleTimeout closes replication links and forgets hashes nobody used
	// for that long (default 2 min).
	IdleTimeout time.Duration
	// DialTimeout bounds connecting to another mediator (default 10 s).
	DialTimeout time.Duration
	// QueryResendDelay is how long the DHT node waits for an answer before
	// resending a query (default 2 s).
	QueryResendDelay time.Duration
	// SendRate and SendBurst limit the DHT packets we send (default 100/s,
	// burst 100).
	SendRate  rate.Limit
	SendBurst int
}

// Defaults for Config's zero values.
const (
	DefaultScanInterval       = 2 * time.Second
	DefaultReannounceInterval = 15 * time.Minute
	DefaultPeerTTL            = 30 * time.Minute
	DefaultLookupInterval     = 30 * time.Second
	DefaultAskInterval        = time.Second
	DefaultIdleTimeout        = 2 * time.Minute
	DefaultDialTimeout        = 10 * time.Second
	DefaultQueryResendDelay   = 2 * time.Second
	DefaultSendRate           = 100
)

// Internal bounds.
const (
	maxConcurrentWalks = 8               // DHT lookups and announces at once
	maxDemand          = 10000           // hashes looked up for local peers at once
	maxRoutes          = 10000           // remembered remote senders
	routeTTL           = 2 * time.Minute // how long a remote sender stays routable
	failBackoff        = 15 * time.Second
	maxAnnounceRetry   = 30 * time.Second
	walkTimeout        = 30 * time.Second
	bootstrapEvery     = 15 * time.Minute
)

// Federation connects a mediator to other mediators. It implements the
// mediator's Federation interface. Create it with New, set it as the
// mediator server's Federation, then call Run.
type Federation struct {
	cfg     Config
	log     *slog.Logger
	conn    net.PacketConn
	guard   *guardConn // conn as the DHT node reads it
	limiter *rate.Limiter
	store   *peerStore[[20]byte]
	proto   *protoDHT // the prototype's 40-byte keys
	selfIPs map[netip.Addr]bool
	walks   chan struct{} // semaphore of concurrent DHT walks
	ann     *announcer
	scanNow chan struct{}

	mu      sync.Mutex
	state   int // stateNew, stateRunning, stateClosed
	ctx     context.Context
	node    *dht.Server
	wg      sync.WaitGroup
	links   map[netip.AddrPort]*link
	failed  map[netip.AddrPort]time.Time // no redial before
	demand  map[string]*demand
	routes  map[string]route
	rotate  int
	relayed int64 // signals sent through the relay-key fallback, for tests
}

const (
	stateNew = iota
	stateRunning
	stateClosed
)

// demand is a hash local peers asked for.
type demand struct {
	lastAsked  time.Time
	nextLookup time.Time     // no lookup before
	retry      time.Duration // wait after a lookup that found nobody
	looking    bool
}

// Backoffs of failed DHT work: short at first, so a mediator that joins
// late is found in seconds, doubling so a lonely one stays quiet.
const (
	firstAnnounceRetry = time.Second
	firstLookupRetry   = 2 * time.Second
)

// route says through which link a remote peer's signals reached us.
type route struct {
	l     *link
	until time.Time
}

// New checks cfg and binds the DHT's UDP socket (so DHTAddr is known before
// Run). Call Run to start, or Close to release the socket without running.
func New(cfg Config) (*Federation, error) {
	if cfg.Mediator == nil {
		return nil, errors.New("federation: no local mediator given")
	}
	if !mediation.ValidPeerID(cfg.MediatorID) {
		return nil, fmt.Errorf("federation: mediator id %q must be 40 lowercase hex characters", cfg.MediatorID)
	}
	if cfg.PublicPort <= 0 || cfg.PublicPort > 65535 {
		return nil, fmt.Errorf("federation: public port %d out of range", cfg.PublicPort)
	}
	setDefault(&cfg.ScanInterval, DefaultScanInterval)
	setDefault(&cfg.ReannounceInterval, DefaultReannounceInterval)
	setDefault(&cfg.PeerTTL, DefaultPeerTTL)
	setDefault(&cfg.LookupInterval, DefaultLookupInterval)
	setDefault(&cfg.AskInterval, DefaultAskInterval)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.DialTimeout, DefaultDialTimeout)
	setDefault(&cfg.QueryResendDelay, DefaultQueryResendDelay)
	setDefault(&cfg.SendRate, DefaultSendRate)
	setDefault(&cfg.SendBurst, int(cfg.SendRate))
	if cfg.DHTListen == "" {
		cfg.DHTListen = ":0"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "federation")
	conn := cfg.PacketConn
	if conn == nil {
		var err error
		conn, err = net.ListenPacket("udp", cfg.DHTListen)
		if err != nil {
			return nil, fmt.Errorf("federation: listening for the DHT on UDP %s: %w", cfg.DHTListen, err)
		}
	}
	var id [20]byte
	hex.Decode(id[:], []byte(cfg.MediatorID))
	f := &Federation{
		cfg:  cfg,
		log:  log,
		conn: conn,
		// One limiter per node, shared by the library and the 40-byte layer
		// (the library's default is shared by every node of the process).
		limiter: rate.NewLimiter(cfg.SendRate, cfg.SendBurst),
		store:   newPeerStore[[20]byte](cfg.PeerTTL),
		selfIPs: localIPs(),
		walks:   make(chan struct{}, maxConcurrentWalks),
		scanNow: make(chan struct{}, 1),
		links:   make(map[netip.AddrPort]*link),
		failed:  make(map[netip.AddrPort]time.Time),
		demand:  make(map[string]*demand),
		routes:  make(map[string]route),
	}
	f.ann = newAnnouncer(f)
	f.proto = &protoDHT{
		id:        id,
		conn:      conn,
		limiter:   f.limiter,
		store:     newPeerStore[[40]byte](cfg.PeerTTL),
		log:       log,
		resend:    cfg.QueryResendDelay,
		isSelf:    f.isSelfDHT,
		bootstrap: f.startingNodes,
		counters:  newProtoCounters(),
	}
	f.guard = &guardConn{PacketConn: conn, intercept: f.proto.intercept}
	if cfg.Registerer != nil {
		if err := f.register(cfg.Registerer); err != nil {
			if cfg.PacketConn == nil {
				conn.Close()
			}
			return nil, err
		}
	}
	return f, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// localIPs lists this host's addresses, to recognise our own announcements.
func localIPs() map[netip.Addr]bool {
	ips := make(map[netip.Addr]bool)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ips
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			ips[p.Addr().Unmap()] = true
		}
	}
	return ips
}

// selfAddr is the address other mediators reach our Socket.IO server at, as
// our own DHT node hands it out: the DHT socket's IP when it is bound to one,
// else this host's first non-loopback IPv4 address (the one a neighbour on
// the LAN would use). ok is false when there is none.
func (f *Federation) selfAddr() (ap netip.AddrPort, ok bool) {
	port := uint16(f.cfg.PublicPort)
	if ua, isUDP := f.conn.LocalAddr().(*net.UDPAddr); isUDP {
		if a, valid := netip.AddrFromSlice(ua.IP); valid && !a.IsUnspecified() {
			return netip.AddrPortFrom(a.Unmap(), port), true
		}
	}
	var best netip.Addr
	for a := range f.selfIPs {
		if a.Is4() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && (!best.IsValid() || a.Less(best)) {
			best = a
		}
	}
	if !best.IsValid() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(best, port), true
}

// isSelfDHT reports whether ap is our own DHT node's address.
func (f *Federation) isSelfDHT(ap netip.AddrPort) bool {
	local, ok := addrPortFromNet(f.conn.LocalAddr())
	if !ok || ap.Port() != local.Port() {
		return false
	}
	a := ap.Addr().Unmap()
	return a == local.Addr() || a.IsLoopback() || a.IsUnspecified() || f.selfIPs[a]
}

// DHTAddr is the UDP address of our DHT node, for other mediators to
// bootstrap from.
func (f *Federation) DHTAddr() net.Addr { return f.conn.LocalAddr() }

// Close releases the DHT socket of a Federation that was never run. Run
// releases it itself when it returns.
func (f *Federation) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state != stateNew {
		return nil
	}
	f.state = stateClosed
	return f.conn.Close()
}

// HashesChanged tells the federation that the local hashes changed, so it
// announces or stops announcing without waiting for the next scan. It never
// blocks.
func (f *Federation) HashesChanged() {
	select {
	case f.scanNow <- struct{}{}:
	default:
	}
}

// Run runs the DHT node, announces, looks up and relays until ctx ends.
// It owns every goroutine it starts and returns after they have ended.
func (f *Federation) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.state != stateNew {
		f.mu.Unlock()
		return errors.New("federation: Run called twice or after Close")
	}
	node, err := f.newNode()
	if err != nil {
		f.state = stateClosed
		f.mu.Unlock()
		f.conn.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.node = node
	f.ctx = ctx
	f.state = stateRunning
	f.mu.Unlock()
	f.log.Info("DHT node running", "addr", f.DHTAddr().String(), "id", f.cfg.MediatorID, "bootstrap", f.cfg.Bootstrap, "public_bootstrap", f.cfg.PublicBootstrap)

	f.spawn(f.bootstrapLoop)
	f.spawn(f.ann.run)
	f.spawn(f.maintainLoop)
	<-ctx.Done()

	f.mu.Lock()
	f.state = stateClosed
	for _, l := range f.links {
		l.cancel()
	}
	f.mu.Unlock()
	f.wg.Wait()
	node.Close()
	// The library closes the socket asynchronously; close it now so the
	// UDP port is free when Run returns.
	f.conn.Close()
	return nil
}

// spawn starts fn in a goroutine Run waits for, unless Run is ending.
func (f *Federation) spawn(fn func(ctx context.Context)) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.spawnLocked(fn)
}

func (f *Federation) spawnLocked(fn func(ctx context.Context)) bool {
	if f.state != stateRunning {
		return false
	}
	ctx := f.ctx
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		fn(ctx)
	}()
	return true
}

// inWalkSlot runs one DHT walk under the concurrency limit and walkTimeout.
// Unless wait, it reports false without walking when too many walks are
// under way.
func (f *Federation) inWalkSlot(ctx context.Context, wait bool, walk func(context.Context) (int, error)) (contacted int, ok bool, err error) {
	if wait {
		select {
		case f.walks <- struct{}{}:
		case <-ctx.Done():
			return 0, false, ctx.Err()
		}
	} else {
		select {
		case f.walks <- struct{}{}:
		default:
			return 0, false, nil
		}
	}
	defer func() { <-f.walks }()
	ctx, cancel := context.WithTimeout(ctx, walkTimeout)
	defer cancel()
	contacted, err = walk(ctx)
	return contacted, true, err
}

// walk runs a traversal for a 20-byte key in a walk slot, if one is free.
func (f *Federation) walk(ctx context.Context, key [20]byte, announcePort int, found func(netip.AddrPort)) (contacted int, ok bool, err error) {
	return f.inWalkSlot(ctx, false, func(ctx context.Context) (int, error) {
		return f.traverse(ctx, f.node, key, announcePort, found)
	})
}

// bootstrapLoop fills the routing table from the bootstrap nodes: quickly
// while it is empty (they may start after us), rarely afterwards.
func (f *Federation) bootstrapLoop(ctx context.Context) {
	retry := time.Second
	var last time.Time
	for {
		if f.node.NumNodes() == 0 || time.Since(last) >= bootstrapEvery {
			stats, err := f.node.BootstrapContext(ctx)
			last = time.Now()
			if err != nil && ctx.Err() == nil {
				f.log.Debug("DHT bootstrap", "err", err)
			} else if err == nil {
				f.log.Debug("DHT bootstrap done", "responses", stats.NumResponses, "nodes", f.node.NumNodes())
			}
		}
		wait := time.Minute
		if f.node.NumNodes() == 0 {
			wait = retry
			retry = min(2*retry, time.Minute)
		} else {
			retry = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// announcing counts the keys being announced, for tests.
func (f *Federation) announcing() int { return f.ann.len() }

type wanted struct {
	hash  string
	relay bool
}

// wantedKeys lists the keys to announce now.
func (f *Federation) wantedKeys() map[[20]byte]wanted {
	want := make(map[[20]byte]wanted)
	for _, h := range f.cfg.Mediator.LocalHashes() {
		if k, err := HashKey(h); err == nil {
			want[k] = wanted{hash: h}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for h := range f.demand {
		want[RelayKey(h)] = wanted{hash: h, relay: true}
	}
	return want
}

// maintainLoop expires what nobody uses: idle links, old demand, routes,
// dial failures and stored announcements.
func (f *Federation) maintainLoop(ctx context.Context) {
	every := min(f.cfg.IdleTimeout/4, 5*time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		f.store.expire(now)
		f.proto.store.expire(now)
		f.mu.Lock()
		var forgotten []string
		for h, d := range f.demand {
			if now.Sub(d.lastAsked) > f.cfg.IdleTimeout && !d.looking {
				delete(f.demand, h)
				forgotten = append(forgotten, h)
			}
		}
		for addr, until := range f.failed {
			if now.After(until) {
				delete(f.failed, addr)
			}
		}
		for id, r := range f.routes {
			if now.After(r.until) {
				delete(f.routes, id)
			}
		}
		links := f.linkList()
		f.mu.Unlock()
		for _, l := range links {
			for _, h := range forgotten {
				l.forget(h)
			}
			if now.Sub(l.idleSince()) > f.cfg.IdleTimeout {
				f.log.Debug("closing idle replication link", "mediator_addr", l.addr.String())
				l.cancel()
			}
		}
	}
}

func (f *Federation) linkList() []*link {
	out := make([]*link, 0, len(f.links))
	for _, l := range f.links {
		out = append(out, l)
	}
	return out
}

// isSelf reports whether ap is our own Socket.IO address: a mediator never
// connects to itself.
func (f *Federation) isSelf(ap netip.AddrPort) bool {
	if int(ap.Port()) != f.cfg.PublicPort {
		return false
	}
	a := ap.Addr().Unmap()
	return a.IsLoopback() || a.IsUnspecified() || f.selfIPs[a]
}

// linkTo returns the link to the mediator at ap, dialing it if needed; nil
// for ourselves, for a mediator that failed recently, or once Run ends.
func (f *Federation) linkTo(ap netip.AddrPort) *link {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if f.isSelf(ap) {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.links[ap]; l != nil {
		return l
	}
	if until, ok := f.failed[ap]; ok && time.Now().Before(until) {
		return nil
	}
	if f.state != stateRunning {
		return nil
	}
	lctx, cancel := context.WithCancel(f.ctx)
	l := newLink(f, ap, cancel, time.Now())
	f.links[ap] = l
	f.spawnLocked(func(context.Context) {
		defer cancel()
		err := l.run(lctx)
		f.mu.Lock()
		if f.links[ap] == l {
			delete(f.links, ap)
		}
		for id, r := range f.routes {
			if r.l == l {
				delete(f.routes, id)
			}
		}
		if err != nil {
			f.failed[ap] = time.Now().Add(failBackoff)
		}
		f.mu.Unlock()
		if err != nil && lctx.Err() == nil {
			f.log.Info("replication link to mediator lost", "mediator_addr", ap.String(), "err", err)
		} else {
			f.log.Debug("replication link closed", "mediator_addr", ap.String())
		}
	})
	return l
}

// learnRoute remembers that remote peer id reached us through l, so our
// peers' answers go back the same way.
func (f *Federation) learnRoute(id string, l *link) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.routes[id]; !ok && len(f.routes) >= maxRoutes {
		return
	}
	f.routes[id] = route{l: l, until: time.Now().Add(routeTTL)}
}

// RemotePeers implements mediator.Federation: the peers other mediators
// named for hash so far. It never waits for the network; it starts a DHT
// lookup when none ran recently and asks the linked mediators again.
func (f *Federation) RemotePeers(hash string, max int) []string {
	if max <= 0 || !mediation.ValidHash(hash) {
		return nil
	}
	now := time.Now()
	f.mu.Lock()
	if f.state != stateRunning {
		f.mu.Unlock()
		return nil
	}
	d := f.demand[hash]
	if d == nil {
		if len(f.demand) >= maxDemand {
			f.mu.Unlock()
			return nil
		}
		d = &demand{}
		f.demand[hash] = d
		defer f.HashesChanged() // announce the relay key soon
	}
	d.lastAsked = now
	if !d.looking && !now.Before(d.nextLookup) {
		d.looking = true
		if !f.spawnLocked(func(ctx context.Context) { f.lookup(ctx, hash, d) }) {
			d.looking = false
		}
	}
	links := f.linkList()
	start := f.rotate
	f.rotate++
	f.mu.Unlock()

	var all []string
	seen := make(map[string]bool)
	for _, l := range links {
		l.reask(hash, now, f.cfg.AskInterval)
		for _, id := range l.peersOf(hash) {
			if !seen[id] {
				seen[id] = true
				all = append(all, id)
			}
		}
	}
	if len(all) <= max {
		return all
	}
	// Rotate so that successive answers cover every remote peer.
	out := make([]string, 0, max)
	for i := range max {
		out = append(out, all[(start+i)%len(all)])
	}
	return out
}

// lookup finds the mediators that announced hash, under its standard key
// (ours) or its 40-byte key (the prototype's), and asks each for peers. The
// two walks run side by side.
func (f *Federation) lookup(ctx context.Context, hash string, d *demand) {
	key, _ := HashKey(hash)
	pkey, _ := ProtoKey(hash)
	now := time.Now()
	var mu sync.Mutex
	found := make(map[netip.AddrPort]bool)
	onFound := func(ap netip.AddrPort) {
		if l := f.linkTo(ap); l != nil {
			mu.Lock()
			found[ap] = true
			mu.Unlock()
			l.ask(hash, now, f.cfg.AskInterval)
		}
	}
	var (
		wg              sync.WaitGroup
		protoOK         bool
		protoErr        error
		contacted, pcon int
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		pcon, protoOK, protoErr = f.inWalkSlot(ctx, false, func(ctx context.Context) (int, error) {
			return f.proto.lookup(ctx, pkey, onFound)
		})
	}()
	contacted, ok, err := f.walk(ctx, key, 0, onFound)
	wg.Wait()
	ok = ok || protoOK
	f.mu.Lock()
	d.looking = false
	switch {
	case !ok:
		// Too many walks: the next get_peers tries again.
	case len(found) == 0:
		// Nobody yet: the seeder's mediator may announce any moment.
		if d.retry == 0 {
			d.retry = firstLookupRetry
		}
		d.nextLookup = time.Now().Add(min(d.retry, f.cfg.LookupInterval))
		d.retry = min(2*d.retry, f.cfg.LookupInterval)
	default:
		d.retry = 0
		d.nextLookup = time.Now().Add(f.cfg.LookupInterval)
	}
	f.mu.Unlock()
	if ctx.Err() == nil {
		if err != nil {
			f.log.Debug("DHT lookup", "hash", hash, "err", err)
		}
		if protoErr != nil {
			f.log.Debug("DHT lookup of the prototype's key", "hash", hash, "err", protoErr)
		}
	}
	if ok {
		f.log.Debug("DHT lookup done", "hash", hash, "mediators", len(found), "nodes", contacted, "proto_nodes", pcon)
	}
}

// RelaySignal implements mediator.Federation: it sends a local peer's signal
// to the mediator of peer to. The mediator server first tries the inbound
// connection to's signals came through. It never blocks: when no link knows
// to, it looks up the mediators whose peers look for hash (the relay key) in
// the background and sends the signal to each of them.
func (f *Federation) RelaySignal(hash, from, to string, data string) bool {
	if !mediation.ValidHash(hash) || !mediation.ValidPeerID(from) || !mediation.ValidPeerID(to) {
		return false
	}
	msg := mediation.Signal{Hash: hash, PeerID: from + to, Data: data}
	f.mu.Lock()
	if f.state != stateRunning {
		f.mu.Unlock()
		return false
	}
	links := f.linkList()
	r, routed := f.routes[to]
	f.mu.Unlock()
	for _, l := range links {
		if l.hasPeer(hash, to) {
			return l.send(msg)
		}
	}
	if routed && time.Now().Before(r.until) {
		return r.l.send(msg)
	}
	return f.spawn(func(ctx context.Context) {
		sent := make(map[netip.AddrPort]bool)
		_, ok, err := f.walk(ctx, RelayKey(hash), 0, func(ap netip.AddrPort) {
			if sent[ap] {
				return
			}
			sent[ap] = true
			if l := f.linkTo(ap); l != nil && l.send(msg) {
				f.mu.Lock()
				f.relayed++
				f.mu.Unlock()
			}
		})
		if !ok || (err != nil && ctx.Err() == nil) {
			f.log.Debug("could not relay a signal", "hash", hash, "to", to, "busy", !ok, "err", err)
		}
	})
}

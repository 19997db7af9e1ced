package federation

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/dht/v2"
	"golang.org/x/time/rate"
)

// Bounds of the 40-byte layer.
const (
	protoK       = 8   // nodes an announce stores us on, nodes per answer
	protoAlpha   = 3   // queries in flight per walk
	maxWalkNodes = 128 // nodes one walk keeps track of
	maxTxns      = 512 // our queries awaiting an answer, all walks together
)

// Markers that make a packet worth decoding here: a 40-byte info_hash in a
// query, or one of our transaction ids in an answer. Our ids are 4 bytes
// starting with "p4"; the library's are varints, whose first byte is below
// 0x80 only when it is their last, so they never look like ours.
var (
	markQuery40 = []byte("9:info_hash40:")
	markOurTxn  = []byte("1:t4:p4")
)

// protoDHT is our node's side of the prototype's 40-byte DHT keys, beside
// the library's node on the same UDP socket. The library keeps only the
// first 20 bytes of a longer info_hash, so it would answer and store a
// prototype key under a different, truncated key. The guard in front of the
// socket hands this layer every get_peers and announce_peer query whose
// info_hash is 40 bytes, and the answers to its own queries; it answers
// with values from its own bounded store, tokens as in BEP 5 and the
// closest nodes of the library's routing table, and walks the DHT for our
// own announces and lookups of 40-byte keys.
type protoDHT struct {
	id      [20]byte
	conn    net.PacketConn // the shared socket, for writes
	limiter *rate.Limiter  // shared with the library's node
	store   *peerStore[[40]byte]
	log     *slog.Logger
	resend  time.Duration
	// isSelf recognises our own DHT node's address.
	isSelf func(netip.AddrPort) bool
	// bootstrap lists where to start when the routing table is empty.
	bootstrap func() ([]dht.Addr, error)

	node     atomic.Pointer[dht.Server] // set once the library's node runs
	tokens   tokens
	dropped  atomic.Int64 // undecodable packets meant for us
	counters protoCounters

	mu   sync.Mutex
	next uint16
	txns map[txnKey]chan<- txnReply
}

type txnKey struct {
	t    string
	addr netip.AddrPort
}

// txnReply is an answer to one of our queries.
type txnReply struct {
	t    string
	from netip.AddrPort
	m    krpcMsg40
}

// intercept handles b if it belongs to the 40-byte layer and reports
// whether it did; the library reads the packets it leaves.
func (p *protoDHT) intercept(b []byte, addr net.Addr) bool {
	query := bytes.Contains(b, markQuery40)
	if !query && !bytes.Contains(b, markOurTxn) {
		return false
	}
	from, ok := addrPortFromNet(addr)
	if !ok {
		return query
	}
	m, err := decodeKRPC40(b)
	if err != nil {
		if query {
			// Not the library's either: it would truncate the key.
			p.dropped.Add(1)
		}
		return query
	}
	switch m.Y {
	case "q":
		if m.A == nil || len(m.A.InfoHash) != protoKeyLen {
			return false
		}
		p.handleQuery(m, from, time.Now())
		return true
	case "r", "e":
		return p.deliver(m, from)
	}
	return query
}

func addrPortFromNet(addr net.Addr) (netip.AddrPort, bool) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		ap, err := netip.ParseAddrPort(addr.String())
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), err == nil
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
}

// handleQuery answers a get_peers or announce_peer query for a 40-byte key.
func (p *protoDHT) handleQuery(m krpcMsg40, from netip.AddrPort, now time.Time) {
	key := [40]byte([]byte(m.A.InfoHash))
	switch m.Q {
	case "get_peers":
		p.counters.getPeers.Inc()
		r := &krpcReturn40{ID: string(p.id[:]), Token: p.tokens.create(from.Addr(), now)}
		v4 := from.Addr().Is4()
		for _, ap := range p.store.get(key, now) {
			if ap.Addr().Is4() == v4 {
				r.Values = append(r.Values, compactAddr(ap))
			}
		}
		nodes := compactNodes(p.closest(protoTarget(key), protoK, func(n nodeInfo) bool {
			return n.addr.Addr().Is4() == v4 && n.addr != from
		}))
		if v4 {
			r.Nodes = nodes
		} else {
			r.Nodes6 = nodes
		}
		p.send(from, krpcMsg40{T: m.T, Y: "r", R: r})
	case "announce_peer":
		if !p.tokens.valid(m.A.Token, from.Addr(), now) {
			p.counters.refused.Inc()
			p.send(from, krpcMsg40{T: m.T, Y: "e", E: krpcError(203, "announce_peer with a bad token")})
			return
		}
		port := int64(from.Port())
		if m.A.ImpliedPort == 0 {
			if m.A.Port == nil || *m.A.Port <= 0 || *m.A.Port > 65535 {
				p.counters.refused.Inc()
				p.send(from, krpcMsg40{T: m.T, Y: "e", E: krpcError(203, "announce_peer without a valid port")})
				return
			}
			port = *m.A.Port
		}
		p.counters.announce.Inc()
		p.store.add(key, netip.AddrPortFrom(from.Addr(), uint16(port)), now)
		p.send(from, krpcMsg40{T: m.T, Y: "r", R: &krpcReturn40{ID: string(p.id[:])}})
	default:
		p.counters.other.Inc()
		p.send(from, krpcMsg40{T: m.T, Y: "e", E: krpcError(204, "method unknown")})
	}
}

// send writes an answer if the send rate allows; answers beyond it are
// dropped, as the library does with its own.
func (p *protoDHT) send(to netip.AddrPort, m krpcMsg40) {
	if !p.limiter.Allow() {
		return
	}
	if _, err := p.conn.WriteTo(encodeKRPC40(m), net.UDPAddrFromAddrPort(to)); err != nil {
		p.log.Debug("DHT answer not sent", "to", to.String(), "err", err)
	}
}

// closest returns up to k nodes of the routing table accepted by ok, the
// closest to target first.
func (p *protoDHT) closest(target [20]byte, k int, ok func(nodeInfo) bool) []nodeInfo {
	node := p.node.Load()
	if node == nil {
		return nil
	}
	var out []nodeInfo
	for _, ni := range node.Nodes() {
		ap := ni.Addr.ToNodeAddrPort()
		n := nodeInfo{id: ni.ID, addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
		if n.addr.IsValid() && ok(n) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b nodeInfo) int { return compareDistance(target, a.id, b.id) })
	return out[:min(k, len(out))]
}

// compareDistance orders a and b by XOR distance to target.
func compareDistance(target, a, b [20]byte) int {
	for i := range target {
		if da, db := a[i]^target[i], b[i]^target[i]; da != db {
			if da < db {
				return -1
			}
			return 1
		}
	}
	return 0
}

var errTooManyQueries = errors.New("too many DHT queries awaiting an answer")

// query sends q to to; its answer goes to replies, once, unless forget is
// called first. It waits for the send rate.
func (p *protoDHT) query(ctx context.Context, to netip.AddrPort, q string, a *krpcArgs40, replies chan<- txnReply) (string, error) {
	if err := p.limiter.Wait(ctx); err != nil {
		return "", err
	}
	p.mu.Lock()
	if len(p.txns) >= maxTxns {
		p.mu.Unlock()
		return "", errTooManyQueries
	}
	var t string
	for {
		p.next++
		t = string(binary.BigEndian.AppendUint16([]byte("p4"), p.next))
		if _, taken := p.txns[txnKey{t, to}]; !taken {
			break
		}
	}
	if p.txns == nil {
		p.txns = make(map[txnKey]chan<- txnReply)
	}
	p.txns[txnKey{t, to}] = replies
	p.mu.Unlock()
	return t, p.resendQuery(to, t, q, a)
}

// resendQuery sends a query again under the same transaction id.
func (p *protoDHT) resendQuery(to netip.AddrPort, t, q string, a *krpcArgs40) error {
	a.ID = string(p.id[:])
	_, err := p.conn.WriteTo(encodeKRPC40(krpcMsg40{T: t, Y: "q", Q: q, A: a}), net.UDPAddrFromAddrPort(to))
	return err
}

// forget drops a query that will not be waited for any longer.
func (p *protoDHT) forget(to netip.AddrPort, t string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.txns, txnKey{t, to})
}

// deliver passes an answer to the query it answers; it reports false for
// an answer to no query of ours.
func (p *protoDHT) deliver(m krpcMsg40, from netip.AddrPort) bool {
	k := txnKey{m.T, from}
	p.mu.Lock()
	replies, ok := p.txns[k]
	delete(p.txns, k)
	p.mu.Unlock()
	if !ok {
		return false
	}
	select {
	case replies <- txnReply{t: m.T, from: from, m: m}:
	default:
	}
	return true
}

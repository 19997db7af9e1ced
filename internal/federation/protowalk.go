package federation

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"
)

// walkNode is one node a 40-byte walk knows of.
type walkNode struct {
	addr  netip.AddrPort
	id    [20]byte
	hasID bool // bootstrap nodes start without one
	state walkState
	sends int
	due   time.Time // resend, or give up, at
	t     string    // transaction id while asking
	token string
}

type walkState uint8

const (
	walkFresh walkState = iota
	walkAsking
	walkAnswered
	walkFailed
)

var errNoDHTNodes = errors.New("no DHT node to ask")

// walk runs an iterative get_peers (BEP 5) for the 40-byte key towards the
// nodes closest to protoTarget(key), as bittorrent-dht does: protoAlpha
// queries at a time to the closest protoK nodes not yet asked, until the
// closest protoK have all answered or failed. found gets every value (a
// mediator's Socket.IO address) as answers arrive, our own store's first.
// It returns the nodes that answered, the closest first.
func (p *protoDHT) walk(ctx context.Context, key [40]byte, found func(netip.AddrPort)) ([]*walkNode, error) {
	now := time.Now()
	for _, ap := range p.store.get(key, now) {
		found(ap)
	}
	target := protoTarget(key)
	w := &protoWalk{p: p, target: target, byAddr: make(map[netip.AddrPort]*walkNode)}
	for _, n := range p.closest(target, maxWalkNodes, func(nodeInfo) bool { return true }) {
		w.add(n.addr, n.id, true)
	}
	if len(w.nodes) == 0 && p.bootstrap != nil {
		addrs, _ := p.bootstrap()
		for _, a := range addrs {
			if ap, ok := addrPortFromNet(a.Raw()); ok {
				w.add(ap, [20]byte{}, false)
			}
		}
	}
	if len(w.nodes) == 0 {
		return nil, errNoDHTNodes
	}
	replies := make(chan txnReply, protoAlpha)
	defer w.forgetAll()
	a := &krpcArgs40{InfoHash: string(key[:])}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		w.sort()
		inflight, picked := 0, 0
		for _, n := range w.nodes {
			if n.state == walkAsking {
				inflight++
			}
		}
		for _, n := range w.nodes {
			if n.state == walkFailed {
				continue
			}
			if picked >= protoK {
				break
			}
			picked++
			if n.state != walkFresh || inflight >= protoAlpha {
				continue
			}
			t, err := p.query(ctx, n.addr, "get_peers", a, replies)
			if err != nil {
				if ctx.Err() != nil {
					return w.answered(), ctx.Err()
				}
				n.state = walkFailed
				continue
			}
			n.state, n.t, n.sends, n.due = walkAsking, t, 1, time.Now().Add(p.resend)
			inflight++
		}
		if inflight == 0 {
			return w.answered(), nil
		}
		var next time.Time
		for _, n := range w.nodes {
			if n.state == walkAsking && (next.IsZero() || n.due.Before(next)) {
				next = n.due
			}
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return w.answered(), ctx.Err()
		case r := <-replies:
			w.handle(r, found)
		case <-timer.C:
			now := time.Now()
			for _, n := range w.nodes {
				if n.state != walkAsking || now.Before(n.due) {
					continue
				}
				// One resend, as a lost packet is the likeliest cause.
				if n.sends < 2 && p.limiter.Allow() && p.resendQuery(n.addr, n.t, "get_peers", a) == nil {
					n.sends++
					n.due = now.Add(p.resend)
					continue
				}
				p.forget(n.addr, n.t)
				n.state = walkFailed
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// protoWalk is the state of one walk.
type protoWalk struct {
	p      *protoDHT
	target [20]byte
	nodes  []*walkNode
	byAddr map[netip.AddrPort]*walkNode
}

func (w *protoWalk) add(ap netip.AddrPort, id [20]byte, hasID bool) {
	if len(w.nodes) >= maxWalkNodes || !ap.IsValid() || w.byAddr[ap] != nil || w.p.isSelf(ap) || (hasID && id == w.p.id) {
		return
	}
	n := &walkNode{addr: ap, id: id, hasID: hasID}
	w.nodes = append(w.nodes, n)
	w.byAddr[ap] = n
}

// sort orders nodes by distance to the target; nodes of unknown id (the
// bootstrap nodes) come first, to be asked who is closer.
func (w *protoWalk) sort() {
	slices.SortStableFunc(w.nodes, func(a, b *walkNode) int {
		switch {
		case a.hasID != b.hasID:
			if !a.hasID {
				return -1
			}
			return 1
		case !a.hasID:
			return 0
		}
		return compareDistance(w.target, a.id, b.id)
	})
}

func (w *protoWalk) handle(r txnReply, found func(netip.AddrPort)) {
	n := w.byAddr[r.from]
	if n == nil || n.state != walkAsking || n.t != r.t {
		return
	}
	res := r.m.R
	if r.m.Y != "r" || res == nil || len(res.ID) != 20 || (n.hasID && res.ID != string(n.id[:])) {
		// An error, or another node than the one we knew at that address.
		n.state = walkFailed
		return
	}
	n.id, n.hasID = [20]byte([]byte(res.ID)), true
	n.state, n.token = walkAnswered, res.Token
	for _, ap := range parseValues(res.Values, n.addr) {
		found(ap)
	}
	for _, ni := range parseCompactNodes(res.Nodes, false) {
		w.add(ni.addr, ni.id, true)
	}
	for _, ni := range parseCompactNodes(res.Nodes6, true) {
		w.add(ni.addr, ni.id, true)
	}
}

// answered returns the nodes that answered, closest first.
func (w *protoWalk) answered() []*walkNode {
	w.sort()
	var out []*walkNode
	for _, n := range w.nodes {
		if n.state == walkAnswered {
			out = append(out, n)
		}
	}
	return out
}

func (w *protoWalk) forgetAll() {
	for _, n := range w.nodes {
		if n.state == walkAsking {
			w.p.forget(n.addr, n.t)
		}
	}
}

// lookup walks the DHT for key; found gets each mediator address announced
// under it. It returns how many nodes answered.
func (p *protoDHT) lookup(ctx context.Context, key [40]byte, found func(netip.AddrPort)) (int, error) {
	answered, err := p.walk(ctx, key, found)
	return len(answered), err
}

// announce walks the DHT for key, then announces port under it to the
// protoK closest nodes that answered with a token. It returns how many
// accepted the announcement.
func (p *protoDHT) announce(ctx context.Context, key [40]byte, port int) (int, error) {
	answered, err := p.walk(ctx, key, func(netip.AddrPort) {})
	if len(answered) == 0 {
		return 0, err
	}
	replies := make(chan txnReply, protoK)
	port64 := int64(port)
	pending := make(map[txnKey]bool)
	defer func() {
		for k := range pending {
			p.forget(k.addr, k.t)
		}
	}()
	for _, n := range answered {
		if len(pending) >= protoK {
			break
		}
		if n.token == "" {
			continue
		}
		a := &krpcArgs40{InfoHash: string(key[:]), Port: &port64, Token: n.token}
		t, err := p.query(ctx, n.addr, "announce_peer", a, replies)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			continue
		}
		pending[txnKey{t, n.addr}] = true
	}
	accepted := 0
	deadline := time.NewTimer(2 * p.resend)
	defer deadline.Stop()
	for len(pending) > 0 {
		select {
		case <-ctx.Done():
			return accepted, ctx.Err()
		case <-deadline.C:
			return accepted, nil
		case r := <-replies:
			k := txnKey{r.t, r.from}
			if !pending[k] {
				continue
			}
			delete(pending, k)
			if r.m.Y == "r" {
				accepted++
			}
		}
	}
	return accepted, nil
}

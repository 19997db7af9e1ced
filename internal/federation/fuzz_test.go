package federation

import (
	"encoding/json"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
	"golang.org/x/time/rate"

	"github.com/p2pcdn/p2pcdn/internal/socketio"
)

// recordingMediator records deliveries instead of having peers.
type recordingMediator struct{ delivered []string }

func (r *recordingMediator) LocalHashes() []string { return nil }
func (r *recordingMediator) DeliverSignal(hash, from, to, data string) bool {
	r.delivered = append(r.delivered, from+">"+to)
	return true
}

const (
	fuzzHash = "0123456789abcdef0123456789abcdef01234567"
	fuzzPeer = "89abcdef0123456789abcdef0123456789abcdef"
)

// FuzzLinkEvent feeds events from a (hostile) remote mediator to a link:
// no input may panic, stored peers must be valid ids of a hash we asked
// about, and only well-formed relay signals are delivered.
func FuzzLinkEvent(f *testing.F) {
	f.Add("peers", `["`+fuzzHash+`",["`+fuzzPeer+`"]]`)
	f.Add("peers", `["`+fuzzHash+`",["`+fuzzPeer+`",1,"x"]]`)
	f.Add("signal", `["`+fuzzHash+`","`+fuzzPeer+fuzzPeer+`","{\"type\":\"answer\"}"]`)
	f.Add("signal", `["`+fuzzHash+`","`+fuzzPeer+`","x"]`)
	f.Add("established", `[]`)
	f.Add("get_peers", `[{"a":1}]`)
	f.Add("whatever", `[null]`)
	f.Fuzz(func(t *testing.T, name, args string) {
		var raw []json.RawMessage
		if json.Unmarshal([]byte(args), &raw) != nil {
			return
		}
		med := &recordingMediator{}
		fed := &Federation{cfg: Config{Mediator: med}, log: testLogger(), routes: make(map[string]route)}
		l := newLink(fed, netip.AddrPort{}, func() {}, time.Now())
		l.asked[fuzzHash] = time.Now()
		_ = l.handle(socketio.Event{Name: name, Args: raw})
		for hash, ids := range l.peers {
			if hash != fuzzHash {
				t.Fatalf("stored peers for %q, which we never asked about", hash)
			}
			for _, id := range ids {
				if len(id) != 40 {
					t.Fatalf("stored invalid peer id %q", id)
				}
			}
		}
		for _, d := range med.delivered {
			if len(d) != 81 {
				t.Fatalf("delivered malformed relay %q", d)
			}
		}
	})
}

// FuzzKRPCMessage checks that every UDP packet guardConn lets through to the
// DHT library decodes without panicking, and that the addresses it yields are
// handled by our peer store. (Without the guard it finds the library's panic
// on short "values" entries: see testdata/fuzz.)
func FuzzKRPCMessage(f *testing.F) {
	f.Add([]byte("d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe"))
	f.Add([]byte("d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe"))
	f.Add([]byte("d1:rd2:id20:mnopqrstuvwxyz1234565:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re"))
	f.Add([]byte("d1:ad2:id20:abcdefghij01234567899:info_hash40:0123456789abcdef0123456789abcdef01234567e1:q9:get_peers1:t2:aa1:y1:qe"))
	store := libPeerStore{newPeerStore[[20]byte](time.Minute)}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !decodesSafely(b) {
			return
		}
		var m krpc.Msg
		if err := bencode.Unmarshal(b, &m); err != nil {
			return
		}
		if m.R != nil {
			for _, v := range m.R.Values {
				store.AddPeer([20]byte{1}, v)
			}
		}
		if m.A != nil && m.A.Port != nil {
			store.AddPeer([20]byte(m.A.InfoHash), krpc.NodeAddr{IP: net.IPv4(127, 0, 0, 1), Port: *m.A.Port})
		}
		for _, p := range store.GetPeers([20]byte{1}) {
			if p.Port <= 0 || p.Port > 65535 {
				t.Fatalf("stored port %d", p.Port)
			}
		}
	})
}

// recordConn is a net.PacketConn that records what is written to it.
type recordConn struct {
	net.PacketConn
	writes [][]byte
}

func (c *recordConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.writes = append(c.writes, append([]byte(nil), b...))
	return len(b), nil
}

func (c *recordConn) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// fuzzTxn is a transaction id of ours that FuzzKRPC40 keeps open.
const fuzzTxn = "p4\x00\x07"

// FuzzKRPC40 feeds UDP packets to the 40-byte layer as the guard does: no
// input may panic; what it answers decodes; what it stores is a valid
// address; answers to our query reach the walk, which takes from them only
// valid addresses and nodes.
func FuzzKRPC40(f *testing.F) {
	from := netip.MustParseAddrPort("127.0.0.2:6881")
	key := "0123456789abcdef0123456789abcdef01234567"
	var zero [16]byte
	token := string(tokenFor(zero, from.Addr()))
	id := "abcdefghij0123456789"
	f.Add([]byte("d1:ad2:id20:" + id + "9:info_hash40:" + key + "e1:q9:get_peers1:t2:aa1:y1:qe"))
	f.Add([]byte("d1:ad2:id20:" + id + "12:implied_porti0e9:info_hash40:" + key + "4:porti4321e5:token8:" + token + "e1:q13:announce_peer1:t2:aa1:y1:qe"))
	f.Add([]byte("d1:ad2:id20:" + id + "12:implied_porti1e9:info_hash40:" + key + "5:token8:" + token + "e1:q13:announce_peer1:t2:aa1:y1:qe"))
	f.Add([]byte("d1:ad2:id20:" + id + "9:info_hash40:" + key + "e1:q9:find_node1:t2:aa1:y1:qe"))
	f.Add([]byte("d1:rd2:id20:" + id + "5:nodes26:" + id + "\x7f\x00\x00\x01\x1a\xe15:token4:abcd6:valuesl6:\x00\x00\x00\x00\x10\xe16:\x7f\x00\x00\x03\x10\xe2ee1:t4:" + fuzzTxn + "1:y1:re"))
	f.Add([]byte("d1:eli203e4:oopse1:t4:" + fuzzTxn + "1:y1:ee"))
	f.Add([]byte("d1:rd2:id20:" + id + "6:valuesl1:xi3eee1:t4:" + fuzzTxn + "1:y1:re"))
	f.Fuzz(func(t *testing.T, b []byte) {
		conn := &recordConn{}
		p := &protoDHT{
			conn:     conn,
			limiter:  rate.NewLimiter(rate.Inf, 0),
			store:    newPeerStore[[40]byte](time.Minute),
			log:      testLogger(),
			resend:   time.Second,
			isSelf:   func(netip.AddrPort) bool { return false },
			counters: newProtoCounters(),
		}
		p.tokens.rotated = time.Now() // zero secrets, so the seeds' token is valid
		replies := make(chan txnReply, 1)
		p.txns = map[txnKey]chan<- txnReply{{fuzzTxn, from}: replies}
		p.intercept(b, net.UDPAddrFromAddrPort(from))
		for _, w := range conn.writes {
			if _, err := decodeKRPC40(w); err != nil {
				t.Fatalf("answered %q, which does not decode: %v", w, err)
			}
		}
		for _, vals := range p.store.m {
			for ap := range vals {
				if !ap.IsValid() || ap.Port() == 0 || ap.Addr() != from.Addr() {
					t.Fatalf("stored %v", ap)
				}
			}
		}
		select {
		case r := <-replies:
			w := &protoWalk{p: p, byAddr: make(map[netip.AddrPort]*walkNode)}
			w.add(from, [20]byte{}, false)
			w.nodes[0].state, w.nodes[0].t = walkAsking, fuzzTxn
			w.handle(r, func(ap netip.AddrPort) {
				if !ap.IsValid() || ap.Port() == 0 || ap.Addr().IsUnspecified() {
					t.Fatalf("found %v", ap)
				}
			})
			for _, n := range w.nodes[1:] {
				if !n.addr.IsValid() || n.addr.Port() == 0 || n.addr.Addr().IsUnspecified() || !n.hasID {
					t.Fatalf("walk took node %+v", n)
				}
			}
			if len(w.nodes) > maxWalkNodes {
				t.Fatalf("walk holds %d nodes", len(w.nodes))
			}
		default:
		}
	})
}

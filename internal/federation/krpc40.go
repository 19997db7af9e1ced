package federation

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/anacrolix/torrent/bencode"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
)

// ProtoKey is the prototype's DHT key of a full hash: the 40 ASCII bytes of
// its hex form (PROTOCOL.md section 6), not a standard 20-byte info hash.
func ProtoKey(hash string) ([40]byte, error) {
	var k [40]byte
	if !mediation.ValidHash(hash) {
		return k, fmt.Errorf("invalid full hash %q: want 40 lowercase hex characters", hash)
	}
	copy(k[:], hash)
	return k, nil
}

// protoTarget is where a 40-byte key lives in the DHT. bittorrent-dht 10
// (through k-bucket 5) measures the XOR distance of two ids over the length
// of the shorter one, counting each further byte of the longer as 0xff, so
// between a 40-byte key and 20-byte node ids only the key's first 20 bytes
// order the nodes: its lookups and announces converge on the nodes closest
// to those, and so do ours.
func protoTarget(k [40]byte) [20]byte { return [20]byte(k[:20]) }

// Sizes of the KRPC messages the 40-byte layer reads and writes.
const (
	protoKeyLen    = 40
	maxTxnIDLen    = 32 // longer transaction ids are not answered
	compactNodeLen = 26 // id, IPv4, port
	compactNode6   = 38 // id, IPv6, port
)

// krpcMsg40 is the part of a KRPC message (BEP 5) the 40-byte layer reads
// and writes. Fields it does not know are ignored; fields of the wrong type
// make the whole message invalid, except in places marked tolerant, which
// other implementations fill loosely.
type krpcMsg40 struct {
	T string        `bencode:"t"`
	Y string        `bencode:"y"`
	Q string        `bencode:"q,omitempty"`
	A *krpcArgs40   `bencode:"a,omitempty"`
	R *krpcReturn40 `bencode:"r,omitempty"`
	E bencode.Bytes `bencode:"e,omitempty"` // [code, message], kept raw
}

type krpcArgs40 struct {
	ID          string `bencode:"id"`
	InfoHash    string `bencode:"info_hash,omitempty"`
	Port        *int64 `bencode:"port,omitempty,ignore_unmarshal_type_error"`
	ImpliedPort int64  `bencode:"implied_port,omitempty,ignore_unmarshal_type_error"`
	Token       string `bencode:"token,omitempty"`
}

type krpcReturn40 struct {
	ID     string   `bencode:"id"`
	Token  string   `bencode:"token,omitempty"`
	Nodes  string   `bencode:"nodes,omitempty,ignore_unmarshal_type_error"`
	Nodes6 string   `bencode:"nodes6,omitempty,ignore_unmarshal_type_error"`
	Values []string `bencode:"values,omitempty,ignore_unmarshal_type_error"`
}

// decodeKRPC40 decodes one UDP packet. It never panics: a decoder panic on
// hostile input is an error like any other.
func decodeKRPC40(b []byte) (m krpcMsg40, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("undecodable KRPC message: %v", r)
		}
	}()
	if len(b) < 2 || b[0] != 'd' {
		return m, errors.New("not a KRPC message: not a bencoded dictionary")
	}
	if err := bencode.Unmarshal(b, &m); err != nil {
		var trailing bencode.ErrUnusedTrailingBytes
		if !errors.As(err, &trailing) {
			return m, fmt.Errorf("bad KRPC message: %w", err)
		}
	}
	if len(m.T) == 0 || len(m.T) > maxTxnIDLen {
		return m, fmt.Errorf("bad KRPC message: transaction id of %d bytes", len(m.T))
	}
	return m, nil
}

// krpcError is the "e" of an error message.
func krpcError(code int, msg string) bencode.Bytes {
	return bencode.MustMarshal([]any{code, msg})
}

func encodeKRPC40(m krpcMsg40) []byte {
	// Every field is a string, an integer or a list of those: this cannot fail.
	return bencode.MustMarshal(m)
}

// nodeInfo is a DHT node: its id and UDP address.
type nodeInfo struct {
	id   [20]byte
	addr netip.AddrPort
}

// parseCompactNodes reads BEP 5 compact node info (26 bytes each; 38 with
// IPv6, BEP 32). A trailing partial record, port 0 and unspecified or
// multicast addresses are skipped.
func parseCompactNodes(s string, v6 bool) []nodeInfo {
	size, ipLen := compactNodeLen, 4
	if v6 {
		size, ipLen = compactNode6, 16
	}
	var out []nodeInfo
	for ; len(s) >= size; s = s[size:] {
		var n nodeInfo
		copy(n.id[:], s[:20])
		ap, ok := parseCompactAddr(s[20:size], ipLen)
		if !ok || ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
			continue
		}
		n.addr = ap
		out = append(out, n)
	}
	return out
}

func parseCompactAddr(s string, ipLen int) (netip.AddrPort, bool) {
	if len(s) != ipLen+2 {
		return netip.AddrPort{}, false
	}
	a, ok := netip.AddrFromSlice([]byte(s[:ipLen]))
	port := binary.BigEndian.Uint16([]byte(s[ipLen:]))
	if !ok || port == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), port), true
}

// parseValues reads the values of a get_peers answer (6 bytes each, 18 with
// IPv6) from the node at from. bittorrent-dht stores its own announcements
// under 0.0.0.0 (the prototype's mediator gives it the host "localhost",
// which its address encoder turns into zeros), so an unspecified address
// stands for the answering node's own.
func parseValues(vals []string, from netip.AddrPort) []netip.AddrPort {
	var out []netip.AddrPort
	for _, v := range vals {
		ipLen := len(v) - 2
		if ipLen != 4 && ipLen != 16 {
			continue
		}
		ap, ok := parseCompactAddr(v, ipLen)
		if !ok || ap.Addr().IsMulticast() {
			continue
		}
		if ap.Addr().IsUnspecified() {
			ap = netip.AddrPortFrom(from.Addr(), ap.Port())
		}
		out = append(out, ap)
	}
	return out
}

func compactAddr(ap netip.AddrPort) string {
	a := ap.Addr().Unmap()
	b := a.AsSlice()
	return string(binary.BigEndian.AppendUint16(b, ap.Port()))
}

func compactNodes(nodes []nodeInfo) string {
	var b []byte
	for _, n := range nodes {
		b = append(b, n.id[:]...)
		b = append(b, compactAddr(n.addr)...)
	}
	return string(b)
}

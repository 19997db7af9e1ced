package federation

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
)

func TestPeerStoreKeysByIPAndPort(t *testing.T) {
	s := libPeerStore{newPeerStore[[20]byte](time.Minute)}
	key := [20]byte{7}
	// Two mediators on one host, one of them given in IPv4-in-IPv6 form.
	s.AddPeer(key, krpc.NodeAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000})
	s.AddPeer(key, krpc.NodeAddr{IP: net.IPv4(127, 0, 0, 1).To4(), Port: 4001})
	s.AddPeer(key, krpc.NodeAddr{IP: net.IPv4(127, 0, 0, 1).To4(), Port: 4000}) // again
	s.AddPeer(key, krpc.NodeAddr{IP: net.IPv4(127, 0, 0, 1), Port: 0})          // no port: ignored
	got := s.get(key, time.Now())
	slices.SortFunc(got, func(a, b netip.AddrPort) int { return a.Compare(b) })
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:4000"), netip.MustParseAddrPort("127.0.0.1:4001")}
	if !slices.Equal(got, want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
	// The library's view decodes back to the same addresses.
	for _, na := range s.GetPeers(key) {
		if na.IP.String() != "127.0.0.1" || (na.Port != 4000 && na.Port != 4001) {
			t.Fatalf("GetPeers gave %v", na)
		}
	}
	if got := s.get([20]byte{8}, time.Now()); len(got) != 0 {
		t.Fatalf("other key holds %v", got)
	}
}

func TestPeerStoreExpiresAndIsBounded(t *testing.T) {
	s := newPeerStore[[20]byte](time.Minute)
	s.maxPerKey, s.maxKeys = 3, 2
	now := time.Now()
	k1, k2, k3 := [20]byte{1}, [20]byte{2}, [20]byte{3}
	for port := 1; port <= 5; port++ {
		s.add(k1, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(port)), now)
	}
	if n := len(s.get(k1, now)); n != 3 {
		t.Fatalf("%d values for one key, want the cap 3", n)
	}
	s.add(k2, netip.MustParseAddrPort("10.0.0.2:1"), now)
	s.add(k3, netip.MustParseAddrPort("10.0.0.3:1"), now)
	if len(s.get(k3, now)) != 0 {
		t.Fatal("a third key was stored beyond the cap of 2")
	}
	later := now.Add(2 * time.Minute)
	if len(s.get(k1, later)) != 0 || len(s.get(k2, later)) != 0 {
		t.Fatal("values outlived their TTL")
	}
	s.add(k3, netip.MustParseAddrPort("10.0.0.3:1"), later)
	if len(s.get(k3, later)) != 1 {
		t.Fatal("expired keys did not make room")
	}
}

func TestKeys(t *testing.T) {
	k, err := HashKey("0123456789abcdef0123456789abcdef01234567")
	if err != nil || k[0] != 0x01 || k[19] != 0x67 {
		t.Fatalf("HashKey = %x, %v", k, err)
	}
	for _, bad := range []string{"", "0123", "0123456789ABCDEF0123456789ABCDEF01234567", "0123456789abcdef0123456789abcdef0123456z"} {
		if _, err := HashKey(bad); err == nil {
			t.Fatalf("HashKey(%q) accepted", bad)
		}
	}
	if RelayKey("0123456789abcdef0123456789abcdef01234567") == k {
		t.Fatal("relay key equals the hash key")
	}
}

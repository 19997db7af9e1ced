package clientip

import (
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

func TestFromRequest(t *testing.T) {
	proxies, err := ParseProxies([]string{"10.0.0.0/8", "::1, 192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		remote string
		header http.Header
		want   string
	}{
		// Headers from anyone but a trusted proxy are ignored.
		{"198.51.100.1:5000", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "198.51.100.1"},
		{"198.51.100.1:5000", http.Header{"Forwarded": {"for=203.0.113.9"}}, "198.51.100.1"},
		// A trusted proxy's word is taken, from the right.
		{"10.1.2.3:5000", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9"},
		{"10.1.2.3:5000", http.Header{"X-Forwarded-For": {"1.1.1.1, 203.0.113.9"}}, "203.0.113.9"},
		// Past every trusted hop, but not past the first untrusted one: the
		// client wrote 1.1.1.1 itself.
		{"10.1.2.3:5000", http.Header{"X-Forwarded-For": {"1.1.1.1, 203.0.113.9, 10.9.9.9"}}, "203.0.113.9"},
		{"10.1.2.3:5000", http.Header{"X-Forwarded-For": {"1.1.1.1", "203.0.113.9"}}, "203.0.113.9"},
		{"[::1]:5000", http.Header{"X-Forwarded-For": {"2001:db8::5"}}, "2001:db8::5"},
		{"192.0.2.7:80", http.Header{"X-Forwarded-For": {"[2001:db8::5]:443"}}, "2001:db8::5"},
		// Forwarded wins over X-Forwarded-For; quoted, ports, brackets, case.
		{"10.1.2.3:5000", http.Header{"Forwarded": {`for=192.0.2.60;proto=http;by=203.0.113.43`}, "X-Forwarded-For": {"1.2.3.4"}}, "192.0.2.60"},
		{"10.1.2.3:5000", http.Header{"Forwarded": {`For="[2001:db8:cafe::17]:4711"`}}, "2001:db8:cafe::17"},
		{"10.1.2.3:5000", http.Header{"Forwarded": {`for=198.51.100.17, for=10.0.0.1`}}, "198.51.100.17"},
		{"10.1.2.3:5000", http.Header{"Forwarded": {`for=198.51.100.17;by="a,b", for=10.0.0.1`}}, "198.51.100.17"},
		// Unparseable entries from a trusted proxy: the proxy it came through.
		{"10.1.2.3:5000", http.Header{"Forwarded": {`for=unknown`}}, "10.1.2.3"},
		{"10.1.2.3:5000", http.Header{"Forwarded": {`proto=https`}}, "10.1.2.3"},
		{"10.1.2.3:5000", http.Header{"X-Forwarded-For": {"203.0.113.9, junk, 10.2.2.2"}}, "10.2.2.2"},
		{"10.1.2.3:5000", http.Header{}, "10.1.2.3"},
		{"[::ffff:10.1.2.3]:5000", http.Header{"X-Forwarded-For": {"::ffff:203.0.113.9"}}, "203.0.113.9"},
	}
	for _, tt := range tests {
		r := &http.Request{RemoteAddr: tt.remote, Header: tt.header}
		if got := proxies.FromRequest(r); got.String() != tt.want {
			t.Errorf("FromRequest(%s, %v) = %s, want %s", tt.remote, tt.header, got, tt.want)
		}
	}
	// Without trusted proxies nothing is forwarded.
	r := &http.Request{RemoteAddr: "10.1.2.3:5000", Header: http.Header{"X-Forwarded-For": {"203.0.113.9"}}}
	if got := Proxies(nil).FromRequest(r); got.String() != "10.1.2.3" {
		t.Errorf("no proxies: %s", got)
	}
}

func TestParseProxiesErrors(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0"} {
		if _, err := ParseProxies([]string{bad}); err == nil {
			t.Errorf("ParseProxies(%q) accepted", bad)
		}
	}
}

func TestCounterPerClientAndIPv6Prefix(t *testing.T) {
	c := NewCounter(2)
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	v6a := netip.MustParseAddr("2001:db8:1:2::1")
	v6b := netip.MustParseAddr("2001:db8:1:2:ffff::9") // same /64
	v6c := netip.MustParseAddr("2001:db8:1:3::1")      // another /64
	if !c.Acquire(a, 1) || !c.Acquire(a, 1) || c.Acquire(a, 1) {
		t.Fatal("IPv4 limit of 2 not applied")
	}
	if !c.Acquire(b, 2) || c.Acquire(b, 1) {
		t.Fatal("clients must be counted apart")
	}
	if !c.Acquire(v6a, 1) || !c.Acquire(v6b, 1) || c.Acquire(v6b, 1) {
		t.Fatal("an IPv6 /64 must count as one client")
	}
	if !c.Acquire(v6c, 2) {
		t.Fatal("another /64 is another client")
	}
	c.Release(a, 1)
	if !c.Acquire(a, 1) {
		t.Fatal("released slot not reusable")
	}
	c.Release(a, 2)
	c.Release(b, 2)
	if n := len(c.n); n != 2 {
		t.Fatalf("%d keys kept after release, want only the two IPv6 clients", n)
	}
	var unlimited *Counter = NewCounter(0)
	if !unlimited.Acquire(a, 1<<30) || unlimited.Count(a) != 0 {
		t.Fatal("a nil Counter must allow everything")
	}
}

func TestLimitListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan net.Addr, 10)
	lim := LimitListener(ln, 2, nil, func(a net.Addr) { refused <- a })
	defer lim.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := lim.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	wait := func(what string) net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for %s", what)
		}
		return nil
	}
	dial()
	dial()
	first := wait("first")
	wait("second")
	c3 := dial()
	select {
	case <-refused:
	case <-time.After(10 * time.Second):
		t.Fatal("third connection from one address not refused")
	}
	// The refused connection is closed by the server.
	c3.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c3.Read(make([]byte, 1)); err == nil {
		t.Fatal("refused connection still open")
	}
	first.Close()
	first.Close() // a second close must not give back a second slot
	dial()
	wait("a connection after one closed")
	dial()
	select {
	case <-refused:
	case <-time.After(10 * time.Second):
		t.Fatal("limit not restored after a double close")
	}

	// Exempt addresses are not counted.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxies, _ := ParseProxies([]string{"127.0.0.0/8"})
	lim2 := LimitListener(ln2, 1, proxies, nil)
	defer lim2.Close()
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", ln2.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		a, err := lim2.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
	}
}

func FuzzFromRequest(f *testing.F) {
	f.Add("10.0.0.1:1", "for=192.0.2.60;proto=http", "1.2.3.4, 10.0.0.2")
	f.Add("10.0.0.1:1", `for="[2001:db8::1]:80", for=unknown`, "")
	f.Add("10.0.0.1:1", `for="\"`, "[::1]:5")
	proxies, _ := ParseProxies([]string{"10.0.0.0/8"})
	f.Fuzz(func(t *testing.T, remote, fwd, xff string) {
		h := http.Header{}
		if fwd != "" {
			h.Set("Forwarded", fwd)
		}
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		got := proxies.FromRequest(&http.Request{RemoteAddr: remote, Header: h})
		peer := FromAddrString(remote)
		// The answer is the TCP peer or an address some header named, and
		// never an untrusted peer's claim.
		if !proxies.Trusted(peer) && got != peer {
			t.Fatalf("untrusted peer %s turned into %s", peer, got)
		}
	})
}

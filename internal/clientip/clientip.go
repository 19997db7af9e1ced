// Package clientip tells which client an HTTP request or TCP connection comes
// from, and counts what each client holds so a server can limit it.
//
// Behind a reverse proxy every connection comes from the proxy's address; the
// client's own address is in the X-Forwarded-For or Forwarded header the proxy
// adds. Those headers are taken only from proxies the operator trusts
// (Proxies): anyone else could write any address into them. IPv6 clients are
// counted per /64, since one subscriber usually holds a whole /64 and could
// otherwise take a fresh address for every connection.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
)

// Proxies are the addresses of trusted reverse proxies. The zero value trusts
// nobody: a request's client is its TCP peer.
type Proxies []netip.Prefix

// ParseProxies parses CIDR prefixes ("10.0.0.0/8", "::1/128") or single
// addresses ("127.0.0.1").
func ParseProxies(list []string) (Proxies, error) {
	var ps Proxies
	for _, s := range list {
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if p, err := netip.ParsePrefix(part); err == nil {
				ps = append(ps, p.Masked())
				continue
			}
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: want an address or CIDR prefix such as 10.0.0.0/8", part)
			}
			a = a.Unmap()
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return ps, nil
}

// Trusted reports whether a is one of the proxies.
func (ps Proxies) Trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// FromRequest returns the address of the client that sent r: the TCP peer,
// or, while that is a trusted proxy, the address the proxy reports. The
// Forwarded header (RFC 7239) is used when present, X-Forwarded-For
// otherwise; the chain is walked from the right (the entry the nearest proxy
// added) past every trusted proxy, so entries the client wrote itself are
// never believed. If a trusted proxy's entry cannot be parsed, the proxy's
// own address is the answer. The zero Addr means r.RemoteAddr is not an
// address (a test's recorder).
func (ps Proxies) FromRequest(r *http.Request) netip.Addr {
	peer := FromAddrString(r.RemoteAddr)
	if !peer.IsValid() || len(ps) == 0 || !ps.Trusted(peer) {
		return peer
	}
	var chain []string
	if fwd := r.Header.Values("Forwarded"); len(fwd) > 0 {
		chain = forwardedFor(fwd)
	} else {
		for _, v := range r.Header.Values("X-Forwarded-For") {
			for _, e := range strings.Split(v, ",") {
				chain = append(chain, strings.TrimSpace(e))
			}
		}
	}
	client := peer
	for i := len(chain) - 1; i >= 0 && ps.Trusted(client); i-- {
		a, ok := parseNode(chain[i])
		if !ok {
			return client
		}
		client = a
	}
	return client
}

// forwardedFor returns the for= values of Forwarded header lines, in order;
// an element without for= gives "" (unparseable, so the walk stops there).
func forwardedFor(lines []string) []string {
	var out []string
	for _, line := range lines {
		for _, elem := range splitQuoted(line, ',') {
			v := ""
			for _, pair := range splitQuoted(elem, ';') {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "for") {
					v = strings.TrimSpace(val)
				}
			}
			out = append(out, v)
		}
	}
	return out
}

// splitQuoted splits s at sep outside double quotes.
func splitQuoted(s string, sep byte) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// parseNode parses one hop of X-Forwarded-For or Forwarded's for=: an
// address, optionally quoted, optionally with a port, IPv6 optionally in
// brackets. Obfuscated identifiers ("unknown", "_hidden") are not addresses.
func parseNode(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// FromAddrString parses "host:port" (a RemoteAddr) or a bare address; the
// zero Addr if it is neither.
func FromAddrString(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// Key is what limits count by: an IPv4 address, or an IPv6 address's /64.
type Key = netip.Prefix

// KeyOf returns a's Key. Every invalid address shares one key.
func KeyOf(a netip.Addr) Key {
	a = a.Unmap()
	if !a.IsValid() {
		return Key{}
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// Counter counts what each client holds (connections, sessions, hashes)
// against a limit. A nil *Counter or a limit of 0 allows everything and
// counts nothing. Its memory is one map entry per client holding something.
type Counter struct {
	max int
	mu  sync.Mutex
	n   map[Key]int
}

// NewCounter returns a Counter allowing max per client; max <= 0 returns nil
// (no limit).
func NewCounter(max int) *Counter {
	if max <= 0 {
		return nil
	}
	return &Counter{max: max, n: make(map[Key]int)}
}

// Limit is the most one client may hold; 0 means no limit.
func (c *Counter) Limit() int {
	if c == nil {
		return 0
	}
	return c.max
}

// Acquire takes n units for a's client if that keeps it within the limit,
// and reports whether it did.
func (c *Counter) Acquire(a netip.Addr, n int) bool {
	if c == nil || n <= 0 {
		return true
	}
	k := KeyOf(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k]+n > c.max {
		return false
	}
	c.n[k] += n
	return true
}

// AcquireUpTo takes as many of n units for a's client as the limit leaves,
// and returns how many it took.
func (c *Counter) AcquireUpTo(a netip.Addr, n int) int {
	if c == nil || n <= 0 {
		return max(n, 0)
	}
	k := KeyOf(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	got := min(n, c.max-c.n[k])
	if got <= 0 {
		return 0
	}
	c.n[k] += got
	return got
}

// Release gives back n units Acquire took for a's client.
func (c *Counter) Release(a netip.Addr, n int) {
	if c == nil || n <= 0 {
		return
	}
	k := KeyOf(a)
	c.mu.Lock()
	defer c.mu.Unlock()
	if left := c.n[k] - n; left > 0 {
		c.n[k] = left
	} else {
		delete(c.n, k)
	}
}

// Count reports what a's client holds.
func (c *Counter) Count(a netip.Addr) int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[KeyOf(a)]
}

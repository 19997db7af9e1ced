package netlab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NAT is how a Router maps its LAN's connections to its public address.
type NAT int

const (
	// Cone keeps a LAN socket's source port for every destination (nftables `masquerade`): what STUN
	// learns is what every peer sees, so hole punching works.
	Cone NAT = iota + 1
	// Symmetric gives every new destination a fresh random port (`masquerade fully-random`): what STUN
	// learns is useless to peers, so only a relay connects two such hosts.
	Symmetric
)

func (n NAT) String() string {
	switch n {
	case Cone:
		return "cone"
	case Symmetric:
		return "symmetric"
	}
	return fmt.Sprintf("NAT(%d)", int(n))
}

// Link is the line between a node and the network it hangs off: each packet, in each direction, is held
// for Delay ± Jitter (uniformly, never reordering packets) and dropped with probability Loss. The zero
// Link is a plain veth pair with no delay.
type Link struct {
	Delay  time.Duration
	Jitter time.Duration
	Loss   float64 // 0 to 1
}

func (l Link) zero() bool { return l == Link{} }

// Option changes a node made by Lab.PublicHost, Lab.Router or Router.Host.
type Option func(*options)

type options struct {
	link    Link
	dropUDP bool
}

// WithLink joins the node to its network (the internet, or its router's LAN) through a delay line.
func WithLink(l Link) Option { return func(o *options) { o.link = l } }

// DropUDP makes a Router a firewall that drops all UDP it would forward, in both directions; TCP passes
// as through any home router. It has no effect on hosts.
func DropUDP() Option { return func(o *options) { o.dropUDP = true } }

// Addresses (RFC 5737 only).
var (
	// Gateway is the internet router's address, every public node's default gateway.
	Gateway = netip.MustParseAddr("203.0.113.1")
	// Internet is the public network.
	Internet = netip.MustParsePrefix("203.0.113.0/24")
	// homes are the ranges cut into home LANs, given to routers in turn.
	homes       = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("192.0.2.0/24")}
	firstPublic = netip.MustParseAddr("203.0.113.10")
	validName   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
)

// internetNS is the namespace of the internet's router.
const internetNS = "internet"

// Lab is a simulated internet inside the namespaces Run made. Build its topology from the goroutine of
// the test Run handed it (its methods fail that test); the hosts it returns may be used from any
// goroutine and subtest.
type Lab struct {
	t *testing.T

	mu       sync.Mutex
	names    map[string]bool
	next     netip.Addr // next free public address
	routers  int        // routers made so far; router N gets home LAN N
	internet int        // interfaces made in the internet router
	lines    []*delayLine
	counters int
}

func newLab(t *testing.T) *Lab {
	t.Helper()
	// Run's re-execution makes us PID 1 of a new PID namespace, in a network namespace of our own.
	// Refuse anything else: a lab built in a real network namespace would change the machine's network.
	if os.Getpid() != 1 {
		t.Fatalf("netlab: %s is set but this is not a fresh namespace made by netlab.Run (pid %d)", envInside, os.Getpid())
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	if len(ifs) != 1 || ifs[0].Name != "lo" {
		t.Fatalf("netlab: refusing to build a lab in a network namespace that has interfaces besides lo: %v", ifs)
	}
	// Our own /run/netns, so `ip netns` names live and die with this mount namespace. The mount
	// namespace is private (unshare's default propagation), so the tmpfs is invisible outside.
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		t.Fatalf("netlab: %v", err)
	}
	if err := syscall.Mount("netlab", "/run/netns", "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "mode=0755"); err != nil {
		t.Fatalf("netlab: mounting a tmpfs on /run/netns: %v", err)
	}
	l := &Lab{t: t, names: map[string]bool{internetNS: true}, next: firstPublic}
	t.Cleanup(l.close)
	l.must(ip("link", "set", "lo", "up"))
	l.must(addNS(internetNS, true))
	// A blackhole drops silently (an unreachable route would answer with ICMP).
	l.must(ip("-n", internetNS, "route", "add", "blackhole", "default"))
	l.must(nft(internetNS, countTable))
	return l
}

// close stops the delay lines. Processes and namespaces end with the PID and mount namespaces.
func (l *Lab) close() {
	l.mu.Lock()
	lines := l.lines
	l.lines = nil
	l.mu.Unlock()
	for _, d := range lines {
		d.close()
	}
}

func (l *Lab) must(err error) {
	l.t.Helper()
	if err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
}

// claim reserves a node name.
func (l *Lab) claim(name string) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !validName.MatchString(name) {
		l.t.Fatalf("netlab: bad node name %q (want %s)", name, validName)
	}
	if l.names[name] {
		l.t.Fatalf("netlab: node name %q is taken", name)
	}
	l.names[name] = true
}

// public allocates a public address and an interface name in the internet router.
func (l *Lab) public() (netip.Addr, string) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.next
	if !Internet.Contains(a) || a.As4()[3] == 255 {
		l.t.Fatalf("netlab: out of public addresses")
	}
	l.next = a.Next()
	l.internet++
	return a, fmt.Sprintf("n%d", l.internet)
}

// PublicHost adds a host with a public address of its own on the internet.
func (l *Lab) PublicHost(name string, opts ...Option) *Host {
	l.t.Helper()
	o := collect(opts)
	l.claim(name)
	addr, inetIf := l.public()
	l.must(addNS(name, false))
	l.must(l.join(name, "eth0", addr, internetNS, inetIf, Gateway, o.link))
	return &Host{node: node{Name: name, ns: name}, Addr: addr}
}

// Router adds a home router with a public address on the internet and a LAN of its own behind it.
func (l *Lab) Router(name string, nat NAT, opts ...Option) *Router {
	l.t.Helper()
	o := collect(opts)
	if nat != Cone && nat != Symmetric {
		l.t.Fatalf("netlab: router %s: unknown NAT %v", name, nat)
	}
	l.claim(name)
	l.mu.Lock()
	lan, ok := homeLAN(l.routers)
	l.routers++
	l.mu.Unlock()
	if !ok {
		l.t.Fatalf("netlab: at most %d routers", lansPerHome*len(homes))
	}
	addr, inetIf := l.public()
	l.must(addNS(name, true))
	l.must(l.join(name, "wan0", addr, internetNS, inetIf, Gateway, o.link))
	l.must(nft(name, routerRules(nat, o.dropUDP)))
	return &Router{node: node{Name: name, ns: name}, lab: l, NAT: nat, Public: addr, LAN: lan, DropsUDP: o.dropUDP, next: lan.Addr().Next().Next()}
}

// lansPerHome is how many LANs each home range gives: /28s, of 13 hosts each.
const (
	lanBits     = 28
	lansPerHome = 1 << (lanBits - 24)
)

// homeLAN is the nth home LAN.
func homeLAN(n int) (netip.Prefix, bool) {
	if n < 0 || n >= lansPerHome*len(homes) {
		return netip.Prefix{}, false
	}
	a := homes[n/lansPerHome].Addr().As4()
	a[3] = byte((n % lansPerHome) << (32 - lanBits))
	return netip.PrefixFrom(netip.AddrFrom4(a), lanBits), true
}

func collect(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// routerRules is a home router's nftables ruleset: masquerade the LAN behind wan0, let in only replies.
func routerRules(nat NAT, dropUDP bool) string {
	masq := "masquerade"
	if nat == Symmetric {
		masq = "masquerade fully-random"
	}
	udp := ""
	if dropUDP {
		udp = "meta l4proto udp drop\n"
	}
	return `table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan0" ` + masq + `
	}
}
table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "wan0" ct state established,related accept
		iifname "wan0" drop
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		` + udp + `ct state established,related accept
		iifname != "wan0" accept
	}
}
`
}

// Router is a home router: it NATs its LAN's hosts behind its public address.
type Router struct {
	node
	lab      *Lab
	NAT      NAT
	Public   netip.Addr   // its address on the internet
	LAN      netip.Prefix // its home network; the router is LAN's first address
	DropsUDP bool

	mu   sync.Mutex
	next netip.Addr
	n    int
}

// Host adds a host to the router's LAN. Only WithLink applies.
func (r *Router) Host(name string, opts ...Option) *Host {
	l := r.lab
	l.t.Helper()
	o := collect(opts)
	l.claim(name)
	r.mu.Lock()
	addr := r.next
	if !r.LAN.Contains(addr.Next()) { // the last address is the broadcast address
		r.mu.Unlock()
		l.t.Fatalf("netlab: router %s: LAN %s is full", r.Name, r.LAN)
	}
	r.next = addr.Next()
	r.n++
	lanIf := fmt.Sprintf("lan%d", r.n)
	r.mu.Unlock()
	l.must(addNS(name, false))
	l.must(l.join(name, "eth0", addr, r.ns, lanIf, r.LAN.Addr().Next(), o.link))
	return &Host{node: node{Name: name, ns: name}, Addr: addr}
}

// join links namespace ns (interface ifName, address addr) with namespace peerNS (interface peerIf,
// address peerAddr) point to point, and routes everything of ns through peerAddr.
func (l *Lab) join(ns, ifName string, addr netip.Addr, peerNS, peerIf string, peerAddr netip.Addr, link Link) error {
	if link.zero() {
		if err := ip("link", "add", ifName, "netns", ns, "type", "veth", "peer", "name", peerIf, "netns", peerNS); err != nil {
			return err
		}
	} else {
		d, err := newDelayLine(ns, ifName, peerNS, peerIf, link)
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.lines = append(l.lines, d)
		l.mu.Unlock()
	}
	for _, c := range [][]string{
		{"-n", ns, "addr", "add", addr.String() + "/32", "peer", peerAddr.String(), "dev", ifName},
		{"-n", ns, "link", "set", ifName, "up"},
		{"-n", peerNS, "addr", "add", peerAddr.String() + "/32", "peer", addr.String(), "dev", peerIf},
		{"-n", peerNS, "link", "set", peerIf, "up"},
		{"-n", ns, "route", "add", "default", "via", peerAddr.String(), "dev", ifName},
	} {
		if err := ip(c...); err != nil {
			return err
		}
	}
	return nil
}

// addNS creates a network namespace with loopback up, IPv6 off, and forwarding on for routers.
func addNS(name string, forward bool) error {
	if err := ip("netns", "add", name); err != nil {
		return err
	}
	if err := ip("-n", name, "link", "set", "lo", "up"); err != nil {
		return err
	}
	return inNetns(name, func() error {
		sysctls := []struct {
			key, val string
			optional bool
		}{
			{"net/ipv6/conf/all/disable_ipv6", "1", true},
			{"net/ipv6/conf/default/disable_ipv6", "1", true},
		}
		if forward {
			sysctls = append(sysctls, struct {
				key, val string
				optional bool
			}{"net/ipv4/ip_forward", "1", false})
		}
		for _, s := range sysctls {
			err := os.WriteFile("/proc/sys/"+s.key, []byte(s.val), 0o644)
			if err != nil && !(s.optional && errors.Is(err, os.ErrNotExist)) {
				return fmt.Errorf("namespace %s: setting %s: %w", name, s.key, err)
			}
		}
		return nil
	})
}

// ip runs ip(8).
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nft loads an nftables ruleset into namespace ns.
func nft(ns, rules string) error {
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %w: %s\nruleset:\n%s", ns, err, strings.TrimSpace(string(out)), rules)
	}
	return nil
}

// Package netlab builds a simulated internet of network namespaces for tests: public hosts, home routers
// that NAT (cone or symmetric) with hosts behind them, a firewall that drops UDP, and links that delay,
// jitter and lose packets like a WAN. Real processes and headless Chromium run on its hosts.
//
// A test hands its body to Run:
//
//	func TestAcrossNATs(t *testing.T) {
//		netlab.Run(t, func(t *testing.T, lab *netlab.Lab) {
//			mediator := lab.PublicHost("mediator")
//			home := lab.Router("home", netlab.Cone)
//			getter := home.Host("getter")
//			p := getter.Start(t, "get", bin, "", "get", "--mediator", "ws://"+mediator.Addr.String()+":8888", hash)
//			...
//		})
//	}
//
// Run re-executes the test binary, limited to this test, inside a fresh `unshare --net --mount --pid`
// with its own /run/netns on a tmpfs, and reports what the test did there. So nothing in the lab reaches
// a real network, and nothing outlives the test: when the test ends, fails or its process is killed, the
// kernel kills every process of the lab's PID namespace and frees its namespaces. Code before Run in the
// test function (and TestMain) runs in both processes; TestMain may pass things to the inner run through
// the environment, which it inherits.
//
// # The network
//
// Only RFC 5737 documentation addresses are used. The internet is 203.0.113.0/24: its router,
// 203.0.113.1, is every public node's default gateway, and it silently drops packets to any address it
// does not know (a home LAN's, say), as the real internet does, so a peer trying such a candidate waits
// instead of failing at once. Home LANs are /28s of 198.51.100.0/24 and then 192.0.2.0/24 (32 routers,
// 13 hosts each): a router's LAN address is the first of its /28 and its hosts follow. IPv6 is off everywhere.
//
// A Router masquerades its LAN behind its public address with nftables: Cone keeps a socket's port for
// every destination (`masquerade`), Symmetric gives each destination a new random port
// (`masquerade fully-random`). Both drop unsolicited packets from the internet, as home routers do, so
// only replies to what the LAN sent come in. DropUDP makes a router also drop all UDP, in and out.
//
// # Delay
//
// Without a Link option a node is joined to the internet by a veth pair. WithLink joins it instead by two
// TUN devices, one in the node and one in the internet router, and a userspace delay line between them
// that holds each packet for Link.Delay (± Jitter, never reordering) and drops a Loss fraction, in both
// directions. The kernel has no netem here; this gives real processes and browsers real round-trip times:
// two public hosts with 20 ms links see a 80 ms round trip between them.
//
// # Skipping
//
// The lab needs root, unshare(1), ip(8) and nft(8); without them Run skips the test and says what is
// missing. With P2PCDN_NETLAB=require in the environment (scripts/test sets it when it runs as root) a
// missing piece fails the test instead, so CI cannot go green by skipping.
package netlab

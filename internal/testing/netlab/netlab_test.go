package netlab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// quiet is how long a test waits to conclude that a packet will not arrive. Packets in the lab take
// microseconds (or a link's delay), so a missing one is dropped, not late.
const quiet = 400 * time.Millisecond

// reflector answers every UDP datagram with the address it came from, as a STUN server would.
func reflector(t *testing.T, h *Host) netip.AddrPort {
	t.Helper()
	pc, err := h.ListenPacket("udp4", h.Addr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(from.String()), from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// mapped sends one datagram from pc to a reflector and returns the address the reflector saw, or an
// invalid AddrPort when no answer came.
func mapped(t *testing.T, pc net.PacketConn, refl netip.AddrPort) netip.AddrPort {
	t.Helper()
	if _, err := pc.WriteTo([]byte("who am i"), net.UDPAddrFromAddrPort(refl)); err != nil {
		t.Fatal(err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(quiet))
	buf := make([]byte, 100)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(string(buf[:n]))
	if err != nil {
		t.Fatalf("reflector answered %q: %v", buf[:n], err)
	}
	return ap
}

// tcpEcho serves TCP on h, echoing what it reads and recording who connected.
func tcpEcho(t *testing.T, h *Host) (addr string, peers <-chan netip.Addr) {
	t.Helper()
	ln, err := h.Listen("tcp4", h.Addr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan netip.Addr, 16)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case ch <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr():
			default:
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String(), ch
}

// vanishes asserts that a TCP connection from h to addr neither succeeds nor fails before the timeout:
// its packets are dropped, not refused or answered as unreachable.
func vanishes(t *testing.T, h *Host, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), quiet)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp4", addr)
	if err == nil {
		c.Close()
		t.Fatalf("%s reached %s", h.Name, addr)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s → %s failed at once (%v); want its packets to vanish", h.Name, addr, err)
	}
}

func TestLabNAT(t *testing.T) {
	Run(t, func(t *testing.T, lab *Lab) {
		pub1, pub2 := lab.PublicHost("pub1"), lab.PublicHost("pub2")
		cone, sym := lab.Router("cone", Cone), lab.Router("sym", Symmetric)
		fw := lab.Router("fw", Cone, DropUDP())
		c1, s1, f1 := cone.Host("c1"), sym.Host("s1"), fw.Host("f1")
		refl1, refl2 := reflector(t, pub1), reflector(t, pub2)
		echo, echoPeers := tcpEcho(t, pub1)
		toEcho, fromEcho := lab.Count(cone.Public, pub1.Addr), lab.Count(pub1.Addr, sym.Public)
		for _, a := range []netip.Addr{pub1.Addr, pub2.Addr, cone.Public, sym.Public, fw.Public} {
			if !Internet.Contains(a) {
				t.Errorf("public address %s is outside %s", a, Internet)
			}
		}
		for _, r := range []*Router{cone, sym, fw} {
			for _, other := range []*Router{cone, sym, fw} {
				if r != other && r.LAN.Overlaps(other.LAN) {
					t.Errorf("LANs %s and %s overlap", r.LAN, other.LAN)
				}
			}
		}

		t.Run("commands run in the host", func(t *testing.T) {
			out, err := c1.Command("ip", "-4", "-o", "addr", "show").CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if !strings.Contains(string(out), c1.Addr.String()+" peer") || strings.Contains(string(out), pub1.Addr.String()+" peer") {
				t.Errorf("ip addr in c1 shows:\n%s", out)
			}
		})

		t.Run("cone keeps the port", func(t *testing.T) {
			pc, err := c1.ListenPacket("udp4", ":0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			m1, m2 := mapped(t, pc, refl1), mapped(t, pc, refl2)
			if !m1.IsValid() || !m2.IsValid() {
				t.Fatalf("no answer through the cone NAT (%v, %v)", m1, m2)
			}
			if m1.Addr() != cone.Public || m1 != m2 {
				t.Errorf("cone mapped one socket to %v and %v, want the same address on %s", m1, m2, cone.Public)
			}

			// Filtering: a reply from where we sent passes; the same mapping from elsewhere does not.
			unsolicited, err := pub2.ListenPacket("udp4", pub2.Addr.String()+":0")
			if err != nil {
				t.Fatal(err)
			}
			defer unsolicited.Close()
			if _, err := unsolicited.WriteTo([]byte("hello"), net.UDPAddrFromAddrPort(m1)); err != nil {
				t.Fatal(err)
			}
			_ = pc.SetReadDeadline(time.Now().Add(quiet))
			if n, from, err := pc.ReadFrom(make([]byte, 100)); err == nil {
				t.Errorf("unsolicited datagram (%d bytes from %v) came through the cone NAT", n, from)
			}
		})

		t.Run("symmetric changes the port", func(t *testing.T) {
			pc, err := s1.ListenPacket("udp4", ":0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			m1, m2 := mapped(t, pc, refl1), mapped(t, pc, refl2)
			if !m1.IsValid() || !m2.IsValid() {
				t.Fatalf("no answer through the symmetric NAT (%v, %v)", m1, m2)
			}
			if m1.Addr() != sym.Public || m2.Addr() != sym.Public || m1.Port() == m2.Port() {
				t.Errorf("symmetric NAT mapped one socket to %v and %v, want two ports on %s", m1, m2, sym.Public)
			}
		})

		t.Run("TCP goes out through the NAT", func(t *testing.T) {
			for _, hr := range []struct {
				h *Host
				r *Router
			}{{c1, cone}, {s1, sym}, {f1, fw}} {
				h := hr.h
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				c, err := h.DialContext(ctx, "tcp4", echo)
				cancel()
				if err != nil {
					t.Fatalf("%s: %v", h.Name, err)
				}
				msg := "ping from " + h.Name
				fmt.Fprint(c, msg)
				got := make([]byte, len(msg))
				_, err = io.ReadFull(c, got)
				c.Close()
				if err != nil || string(got) != msg {
					t.Fatalf("%s: echo gave %q, %v", h.Name, got, err)
				}
				if from := <-echoPeers; from != hr.r.Public {
					t.Errorf("%s reached the server from %s, want its router's public address %s", h.Name, from, hr.r.Public)
				}
			}
		})

		t.Run("counters see traffic after NAT", func(t *testing.T) {
			// c1's echo above went from cone's public address; s1's came back to sym's.
			for _, c := range []*Counter{toEcho, fromEcho} {
				n, err := c.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				if n < 100 { // a TCP handshake and one exchange, at least
					t.Errorf("counter %s saw %d bytes", c.name, n)
				}
			}
		})

		t.Run("firewall drops UDP", func(t *testing.T) {
			pc, err := f1.ListenPacket("udp4", ":0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			if m := mapped(t, pc, refl1); m.IsValid() {
				t.Errorf("UDP passed the firewall (seen as %v)", m)
			}
		})

		t.Run("routers drop unsolicited connections", func(t *testing.T) {
			vanishes(t, pub1, netip.AddrPortFrom(cone.Public, 22).String())
			vanishes(t, pub1, netip.AddrPortFrom(sym.Public, 22).String())
		})

		t.Run("private addresses vanish", func(t *testing.T) {
			vanishes(t, pub1, netip.AddrPortFrom(c1.Addr, 80).String())
			vanishes(t, c1, netip.AddrPortFrom(s1.Addr, 80).String())
			vanishes(t, pub1, "203.0.113.250:80") // public, but nobody there
		})
	})
}

// rtt measures the smallest of n TCP round trips from h to an echo server at addr.
func rtt(t *testing.T, h *Host, addr string, n int) (minRTT, maxRTT time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1)
	minRTT = time.Hour
	for range n {
		start := time.Now()
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		minRTT, maxRTT = min(minRTT, d), max(maxRTT, d)
	}
	return minRTT, maxRTT
}

func TestLabDelay(t *testing.T) {
	Run(t, func(t *testing.T, lab *Lab) {
		server := lab.PublicHost("server")
		near := lab.PublicHost("near")
		far := lab.PublicHost("far", WithLink(Link{Delay: 40 * time.Millisecond}))
		jittery := lab.PublicHost("jittery", WithLink(Link{Delay: 30 * time.Millisecond, Jitter: 20 * time.Millisecond}))
		lossy := lab.PublicHost("lossy", WithLink(Link{Delay: time.Millisecond, Loss: 0.5}))
		home := lab.Router("home", Cone, WithLink(Link{Delay: 10 * time.Millisecond}))
		behind := home.Host("behind", WithLink(Link{Delay: 5 * time.Millisecond}))
		echo, _ := tcpEcho(t, server)

		// Each link delays both ways; the server's link has no delay.
		for _, c := range []struct {
			h    *Host
			want time.Duration
		}{
			{near, 0},
			{far, 80 * time.Millisecond},
			{jittery, 20 * time.Millisecond},
			{behind, 30 * time.Millisecond},
		} {
			lo, hi := rtt(t, c.h, echo, 10)
			t.Logf("%s: TCP round trip %v to %v (links add at least %v)", c.h.Name, lo.Round(100*time.Microsecond), hi.Round(100*time.Microsecond), c.want)
			if lo < c.want {
				t.Errorf("%s: a round trip took %v, less than its links' delay %v", c.h.Name, lo, c.want)
			}
		}

		t.Run("a process sees the delay", func(t *testing.T) {
			// A real TCP client process (bash's /dev/tcp) in the far host; it needs at least the
			// handshake and one exchange, two round trips.
			host, port, _ := net.SplitHostPort(echo)
			start := time.Now()
			out, err := far.Command("bash", "-c", `exec 3<>/dev/tcp/`+host+`/`+port+` && echo hi >&3 && head -c 3 <&3`).CombinedOutput()
			took := time.Since(start)
			if err != nil || string(out) != "hi\n" {
				t.Fatalf("bash via /dev/tcp: %q, %v", out, err)
			}
			t.Logf("bash connect and echo from far: %v", took.Round(time.Millisecond))
			if took < 160*time.Millisecond {
				t.Errorf("two round trips of 80 ms took %v", took)
			}
		})

		t.Run("jitter keeps order, loss loses", func(t *testing.T) {
			recv, err := server.ListenPacket("udp4", server.Addr.String()+":0")
			if err != nil {
				t.Fatal(err)
			}
			defer recv.Close()
			for _, h := range []*Host{jittery, lossy} {
				const n = 400
				// Read while sending, so the receiving socket's buffer never overflows.
				type tally struct{ got, outOfOrder int }
				done := make(chan tally)
				go func() {
					var r tally
					last := -1
					buf := make([]byte, 100)
					for {
						_ = recv.SetReadDeadline(time.Now().Add(quiet))
						m, _, err := recv.ReadFrom(buf)
						if err != nil {
							done <- r
							return
						}
						var i int
						fmt.Sscan(string(buf[:m]), &i)
						if i <= last {
							r.outOfOrder++
						}
						last = i
						r.got++
					}
				}()
				send, err := h.ListenPacket("udp4", ":0")
				if err != nil {
					t.Fatal(err)
				}
				for i := range n {
					if _, err := send.WriteTo(fmt.Appendf(nil, "%d", i), recv.LocalAddr()); err != nil {
						t.Fatal(err)
					}
					if i%20 == 19 {
						time.Sleep(time.Millisecond) // stay under the sending socket's buffer
					}
				}
				send.Close()
				r := <-done
				got := r.got
				if r.outOfOrder > 0 {
					t.Errorf("%s: %d datagrams arrived out of order", h.Name, r.outOfOrder)
				}
				t.Logf("%s: %d of %d datagrams arrived", h.Name, got, n)
				switch {
				case h == jittery && got != n:
					t.Errorf("jittery link without loss delivered %d of %d", got, n)
				case h == lossy && (got < n/4 || got > 3*n/4):
					t.Errorf("a link losing half its packets delivered %d of %d", got, n)
				}
			}
		})
	})
}

func TestLabChromium(t *testing.T) {
	if _, err := os.Stat("/usr/bin/chromium"); err != nil && os.Getenv("P2PCDN_CHROMIUM") == "" {
		t.Skip("chromium is not installed")
	}
	Run(t, func(t *testing.T, lab *Lab) {
		server := lab.PublicHost("web")
		home := lab.Router("home", Symmetric, WithLink(Link{Delay: 20 * time.Millisecond}))
		desk := home.Host("desk")
		ln, err := server.Listen("tcp4", server.Addr.String()+":0")
		if err != nil {
			t.Fatal(err)
		}
		from := make(chan string, 4)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case from <- r.RemoteAddr:
			default:
			}
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, `<!doctype html><title>from the lab</title>`)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })

		b := desk.Chromium(t)
		ctx, cancel := context.WithTimeout(b.Tab(), time.Minute)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Navigate("http://"+ln.Addr().String()+"/")); err != nil {
			t.Fatal(err)
		}
		title, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.title"))
		if err != nil {
			t.Fatal(err)
		}
		if title != "from the lab" {
			t.Errorf("page title %q", title)
		}
		if got := <-from; !strings.HasPrefix(got, home.Public.String()+":") {
			t.Errorf("the page was fetched from %s, want the router's public address %s", got, home.Public)
		}
	})
}

func TestUnavailableSaysWhy(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	why := unavailable()
	if os.Geteuid() == 0 && !strings.Contains(why, "unshare is not installed") {
		t.Errorf("without tools on PATH: %q", why)
	}
	if os.Geteuid() != 0 && !strings.Contains(why, "needs root") {
		t.Errorf("as a user: %q", why)
	}
}

func TestRunPattern(t *testing.T) {
	if got, want := runPattern("TestA/b_c"), `^TestA$/^b_c$`; got != want {
		t.Errorf("runPattern = %q, want %q", got, want)
	}
}

func TestHomeLANs(t *testing.T) {
	seen := map[netip.Prefix]bool{}
	for n := 0; ; n++ {
		p, ok := homeLAN(n)
		if !ok {
			if n != 32 {
				t.Errorf("%d home LANs, want 32", n)
			}
			break
		}
		if !homes[0].Contains(p.Addr()) && !homes[1].Contains(p.Addr()) || p.Bits() != 28 {
			t.Errorf("home LAN %d is %s, outside 198.51.100.0/24 and 192.0.2.0/24", n, p)
		}
		for q := range seen {
			if q.Overlaps(p) {
				t.Errorf("home LANs %s and %s overlap", q, p)
			}
		}
		seen[p] = true
	}
}

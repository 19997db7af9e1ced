package netlab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// countTable holds the internet router's traffic counters; it only counts, never filters.
const countTable = `table ip count {
	chain forward {
		type filter hook forward priority filter; policy accept;
	}
}
`

// Counter counts the IP traffic the internet router forwards from one address to another.
type Counter struct {
	name string
}

// Count starts counting the traffic from src to dst across the internet, as the internet router sees it:
// after NAT, so a host behind a router is seen as its router's public address.
func (l *Lab) Count(src, dst netip.Addr) *Counter {
	l.t.Helper()
	l.mu.Lock()
	l.counters++
	c := &Counter{name: fmt.Sprintf("c%d", l.counters)}
	l.mu.Unlock()
	l.must(nft(internetNS, fmt.Sprintf("add counter ip count %s\nadd rule ip count forward ip saddr %s ip daddr %s counter name %q\n", c.name, src, dst, c.name)))
	return c
}

// Bytes is how many bytes (IP packets, headers included) the counter has seen.
func (c *Counter) Bytes() (uint64, error) {
	out, err := exec.Command("ip", "netns", "exec", internetNS, "nft", "-j", "list", "counter", "ip", "count", c.name).Output()
	if err != nil {
		return 0, fmt.Errorf("reading counter %s: %w", c.name, err)
	}
	var list struct {
		Nftables []struct {
			Counter *struct {
				Name  string `json:"name"`
				Bytes uint64 `json:"bytes"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return 0, fmt.Errorf("reading counter %s: %w: %s", c.name, err, strings.TrimSpace(string(out)))
	}
	for _, o := range list.Nftables {
		if o.Counter != nil && o.Counter.Name == c.name {
			return o.Counter.Bytes, nil
		}
	}
	return 0, fmt.Errorf("counter %s is missing from nft's answer: %s", c.name, strings.TrimSpace(string(out)))
}

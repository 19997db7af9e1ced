package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// mediatorRows runs bench/mediator (its own program, which loads a mediator
// with many WebSocket peers) against p2pcdn's mediator and its Node
// socket.io baseline, and turns its summary table into rows.
func (b *bench) mediatorRows(ctx context.Context) ([]row, error) {
	const title = "Mediator"
	n := b.sz.mediatorPeers
	nodeDir := filepath.Join(b.root, "bench", "mediator", "node")
	if _, err := os.Stat(filepath.Join(b.root, "bench", "mediator", "main.go")); err != nil {
		return []row{{group: title, name: "mediator load", note: "not measured: bench/mediator does not exist"}}, nil
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules")); err != nil {
		return []row{{group: title, name: "mediator load", note: "not measured: run `npm ci` in bench/mediator/node first"}}, nil
	}
	tool := filepath.Join(b.work, "mediator-bench")
	build := exec.CommandContext(ctx, "go", "build", "-o", tool, "./bench/mediator")
	build.Dir = b.root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./bench/mediator: %w: %s", err, lastLine(string(out)))
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	probes := min(2000, n/5+100)
	r, err := b.runTimed(ctx, tool, "-bin", b.bin, "-n", strconv.Itoa(n), "-probes", strconv.Itoa(probes),
		"-targets", "go,node", "-node-dir", nodeDir, "-port", strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	res, err := parseMediatorTable(r.stdout)
	if err != nil {
		return nil, err
	}
	g, okG := res["go"]
	nd, okN := res["node"]
	if !okG || !okN {
		return nil, fmt.Errorf("bench/mediator printed no go and node lines:\n%s", r.stdout)
	}
	base := fmt.Sprintf("Node socket.io 4 mediator (bench/mediator/node), %d peers", n)
	return []row{
		{group: title, name: fmt.Sprintf("events handled per CPU-second, %d connected peers", n), unit: unitPerCore,
			got: []float64{g.eventsPerCore}, baseName: base, base: []float64{nd.eventsPerCore}},
		{group: title, name: fmt.Sprintf("p99 get_peers round trip under load, %d connected peers", n), unit: unitMS,
			got: []float64{g.p99}, baseName: base, base: []float64{nd.p99}},
		{group: title, name: "resident memory per connected peer", unit: unitKiB,
			got: []float64{g.kibPerPeer}, baseName: base, base: []float64{nd.kibPerPeer}},
	}, nil
}

type mediatorResult struct {
	eventsPerCore, p99, kibPerPeer float64
}

// parseMediatorTable reads bench/mediator's summary: a header line starting
// with "target" and one line per target, columns named in the header.
func parseMediatorTable(out []byte) (map[string]mediatorResult, error) {
	res := map[string]mediatorResult{}
	var cols []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == "target" {
			// Multi-word headers ("p99 ms") are rejoined: a word that is a
			// unit belongs to the column before it.
			cols = nil
			for _, w := range f {
				if (w == "ms" || strings.HasPrefix(w, "KiB")) && len(cols) > 0 && !strings.Contains(cols[len(cols)-1], "/") {
					cols[len(cols)-1] += " " + w
					continue
				}
				cols = append(cols, w)
			}
			continue
		}
		if cols == nil || len(f) != len(cols) || (f[0] != "go" && f[0] != "node") {
			continue
		}
		var r mediatorResult
		for i, c := range cols {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch c {
			case "events/s/core":
				r.eventsPerCore = v
			case "p99 ms":
				r.p99 = v
			}
			if strings.HasPrefix(c, "RSS") {
				r.kibPerPeer = v
			}
		}
		res[f[0]] = r
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("no result lines in bench/mediator's output:\n%s", bytes.TrimSpace(out))
	}
	return res, nil
}

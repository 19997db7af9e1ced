package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// wanRTTs are the round trips of the WAN group.
var wanRTTs = []time.Duration{20 * time.Millisecond, 80 * time.Millisecond, 200 * time.Millisecond}

// wanResult is what internal/e2e/wan's TestWANMeasure writes for one round trip (its Measured).
type wanResult struct {
	RTTMS float64 `json:"rtt_ms"`
	Rows  []struct {
		Key      string    `json:"key"`
		Name     string    `json:"name"`
		BaseName string    `json:"base_name"`
		Got      []float64 `json:"got_ms"`
		Base     []float64 `json:"base_ms"`
	} `json:"rows"`
	Timeline string `json:"timeline"`
}

// wanRows runs internal/e2e/wan's measurement (real processes and Chromium in a netlab whose far host
// is a round trip away) and turns its results into rows. It needs root for the lab's namespaces.
func (b *bench) wanRows(ctx context.Context) ([]row, error) {
	const title = "WAN (netlab: downloader a round trip away from the seeder and its mediator)"
	if os.Geteuid() != 0 {
		return []row{{group: title, name: "WAN rows", note: "not measured: the lab's network namespaces need root (bench/run as root)"}}, nil
	}
	test := filepath.Join(b.work, "wan.test")
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", test, "./internal/e2e/wan")
	build.Dir, build.Stderr = b.root, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("go test -c ./internal/e2e/wan: %w", err)
	}
	out := filepath.Join(b.work, "wan")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	var rtts []string
	for _, d := range wanRTTs {
		rtts = append(rtts, d.String())
	}
	runs := max(3, b.sz.runs/2)
	cmd := exec.CommandContext(ctx, test, "-test.run", "^TestWANMeasure$", "-test.v", "-test.timeout", "60m")
	cmd.Dir = filepath.Join(b.root, "internal", "e2e", "wan")
	cmd.Env = append(slices.Clone(b.env), "P2PCDN_WAN_MEASURE="+out, "P2PCDN_WAN_RTTS="+strings.Join(rtts, ","),
		"P2PCDN_WAN_RUNS="+strconv.Itoa(runs), "P2PCDN_E2E_BIN="+b.bin, "P2PCDN_NETLAB=require")
	log, err := os.Create(filepath.Join(b.work, "wan.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	b.log.Info("measuring across the WAN lab", "rtts", rtts, "runs", runs, "log", log.Name())
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("TestWANMeasure: %w (see %s, kept with --keep)", err, log.Name())
	}
	var rows []row
	for _, d := range wanRTTs {
		data, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("wan-%dms.json", d.Milliseconds())))
		if err != nil {
			return rows, fmt.Errorf("reading the %v results: %w", d, err)
		}
		var res wanResult
		if err := json.Unmarshal(data, &res); err != nil {
			return rows, fmt.Errorf("reading the %v results: %w", d, err)
		}
		for _, r := range res.Rows {
			rows = append(rows, row{group: title, name: fmt.Sprintf("%s, %v round trip", r.Name, d), unit: unitMS,
				got: r.Got, base: r.Base, baseName: r.BaseName})
		}
		if tl := timelineNote(res.Timeline); tl != "" {
			rows = append(rows, row{group: title, name: fmt.Sprintf("where a 1 MB get's time went, %v round trip (last run, ms since start)", d),
				note: tl})
		}
	}
	return rows, nil
}

// timelineNote condenses `get --verbose`'s timeline ("timeline  123.4 ms  +12.3  step") to the steps
// that end a round trip, on one line.
func timelineNote(tl string) string {
	var parts []string
	for _, line := range strings.Split(tl, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "timeline" {
			continue
		}
		step := strings.Join(f[4:], " ")
		for _, want := range []string{"mediator: TCP connected", "mediator: WebSocket open", "mediator: peers answered",
			"rtc: offer sent", "rtc: answer received", "rtc: ICE connected", "rtc: DTLS connected", "rtc: data channel open",
			"bt: handshake received", "bt: first block received", "bt: complete", "file in place"} {
			if step == want {
				ms, _ := strconv.ParseFloat(f[1], 64)
				parts = append(parts, fmt.Sprintf("%s %.0f", strings.TrimPrefix(strings.TrimPrefix(step, "mediator: "), "rtc: "), ms))
			}
		}
	}
	return strings.Join(parts, " · ")
}

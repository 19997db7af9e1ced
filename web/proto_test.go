package web

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
	"github.com/p2pcdn/p2pcdn/internal/testenv"
)

// startProtoMediator runs testdata/protomediator/mediator.js, a stand-in
// for the prototype's mediator (socket.io 4.5, its contract and quirks), on
// 127.0.0.1 and returns its Socket.IO address.
func startProtoMediator(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "protomediator")
	testenv.NPMInstall(t, dir)
	cmd := exec.Command(testenv.Node(t), "mediator.js", "0", "0")
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe() // it exits when stdin closes
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the prototype mediator: %v", err)
	}
	done := make(chan struct{})
	port := make(chan int, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e struct {
				Ev   string `json:"ev"`
				Port int    `json:"port"`
			}
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Ev == "listening" {
				port <- e.Port
			}
		}
		cmd.Wait() //nolint:errcheck // it ends when the test closes stdin
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill() //nolint:errcheck // it was asked to exit
			<-done
		}
	})
	select {
	case p := <-port:
		return fmt.Sprintf("127.0.0.1:%d", p)
	case <-done:
		t.Fatal("the prototype mediator exited before listening")
	case <-time.After(startWait):
		t.Fatal("the prototype mediator did not listen in time")
	}
	return ""
}

const startWait = 60 * time.Second

// TestPagesThroughPrototypeMediator: two pages of ours meet through the
// prototype's mediator. It sends a bare established, so the pages take it
// for what it is: no capabilities, no ICE servers, one event per hash, no
// get_ice_servers. Their own extensions between each other still work, since
// the mediator relays signals untouched: the files come over one connection.
func TestPagesThroughPrototypeMediator(t *testing.T) {
	page := startMediator(t) // serves the pages only
	proto := "ws://" + startProtoMediator(t)
	b := chromium.New(t)
	a, c := b.Tab(), b.NewTab()
	navigate(t, a, page.URL()+"/test.html")
	navigate(t, c, page.URL()+"/test.html")
	connect := fmt.Sprintf(`%s; %s; %s;
		window.node = await p2pcdn.connect({mediator: %q, iceServers: []});`, eventsJS, assetsJS, countPCsJS, proto)
	seeded := eval[map[string]any](t, a, `(async () => { `+connect+`
		const hashes = [], sums = [];
		for (const blob of assets(4, 5)) { hashes.push((await node.seed(blob, {name: "p.bin"})).full_hash); sums.push(await sum(blob)); }
		return {hashes, sums, caps: node.capabilities, ice: node.mediatorIce.length}; })()`)
	if seeded["caps"] != nil || seeded["ice"] != 0.0 {
		t.Errorf("toward the prototype's mediator: capabilities %v, %v ICE servers; want none", seeded["caps"], seeded["ice"])
	}
	got := eval[map[string]any](t, c, `(async () => { `+connect+`
		const blobs = await Promise.all(`+jsonList(seeded["hashes"])+`.map((h) => node.fetch(h, {timeout: 60000})));
		return {sums: await Promise.all(blobs.map(sum)), pcs: window.pcs, names: events.map((e) => e[0])}; })()`)
	if fmt.Sprint(got["sums"]) != fmt.Sprint(seeded["sums"]) {
		t.Fatalf("fetched files differ from the seeded ones")
	}
	if got["pcs"] != 1.0 {
		t.Errorf("two pages of ours made %v peer connections through the prototype's mediator, want 1", got["pcs"])
	}
	for who, names := range map[string]string{"seeder": fmt.Sprint(eval[[]string](t, a, `events.map((e) => e[0])`)), "fetcher": fmt.Sprint(got["names"])} {
		if strings.Contains(names, "_many") || strings.Contains(names, "get_ice_servers") {
			t.Errorf("the %s sent our extensions' events to the prototype's mediator: %s", who, names)
		}
	}
}

package web

import (
	"fmt"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// sentInfoRequestsJS counts, in window.infoRequests, the p2pcdn_info requests the page sends on any
// data channel (docs/extensions.md: d8:msg_typei0e5:piece…).
const sentInfoRequestsJS = `(() => {
	window.infoRequests = 0;
	const send = RTCDataChannel.prototype.send;
	const needle = new TextEncoder().encode('d8:msg_typei0e5:piece');
	const has = (u8) => { outer: for (let i = 0; i + needle.length <= u8.length; i++) {
		for (let j = 0; j < needle.length; j++) if (u8[i + j] !== needle[j]) continue outer;
		return true; } return false; };
	RTCDataChannel.prototype.send = function (d) {
		const u8 = d instanceof ArrayBuffer ? new Uint8Array(d) : ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : null;
		if (u8 && has(u8)) window.infoRequests++;
		return send.call(this, d);
	};
	return true; })()`

// TestInfoInExtendedHandshake: a page seeding a small file sends its dictionary in the extended
// handshake (info_bytes), and a page fetching by hash takes it from there without asking for it.
func TestInfoInExtendedHandshake(t *testing.T) {
	base := startMediator(t).URL()
	b := chromium.New(t)
	a, c := b.Tab(), b.NewTab()
	navigate(t, a, base+"/test.html")
	navigate(t, c, base+"/test.html")

	const size = 300000 // 2 pieces
	hash := eval[string](t, a, `(async () => { `+genJS+`
		window.node = await p2pcdn.connect({iceServers: [], debug: true});
		const info = await node.seed(new Blob([gen(`+fmt.Sprint(size)+`)]), {name: "small.bin"});
		return info.full_hash; })()`)
	eval[bool](t, c, sentInfoRequestsJS)
	got := eval[map[string]any](t, c, `(async () => { `+genJS+`
		window.node = await p2pcdn.connect({iceServers: [], debug: true});
		const blob = await node.fetch(`+fmt.Sprintf("%q", hash)+`);
		const same = Array.from(new Uint8Array(await blob.arrayBuffer())).join() === Array.from(gen(`+fmt.Sprint(size)+`)).join();
		return {same, requests: window.infoRequests, name: node.infoOf(`+fmt.Sprintf("%q", hash)+`).file_name};
	})()`)
	if got["same"] != true || got["name"] != "small.bin" {
		t.Fatalf("fetched %v", got)
	}
	if n, _ := got["requests"].(float64); n != 0 {
		t.Errorf("the fetching page asked for the dictionary %v times; it came in the extended handshake", n)
	}
}

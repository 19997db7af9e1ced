package web

import (
	"fmt"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// TestDecodersSurviveGarbage feeds random and mutated bytes to the library's
// network decoders inside the page (the JavaScript counterpart of a Go fuzz
// target): the peer-wire stream parser, bencode and the Socket.IO packet
// handler. None may let an exception escape or stall; bad input closes the
// peer connection.
func TestDecodersSurviveGarbage(t *testing.T) {
	base := startMediator(t).URL()
	b := chromium.New(t)
	navigate(t, b.Tab(), base+"/test.html")
	res := eval[map[string]any](t, b.Tab(), `(async () => {
		const I = p2pcdn._internal, hash = "11".repeat(20);
		let escaped = 0, rejections = 0, closedByError = 0, runs = 0;
		window.addEventListener("unhandledrejection", () => rejections++);
		const rnd = (n) => Math.floor(Math.random() * n);
		const bytes = (n) => { const u = new Uint8Array(n); crypto.getRandomValues(u); return u; };
		const node = { peerId: "22".repeat(20), log() {}, closed: false, _announce() {} };
		const hs = new Uint8Array(68); hs.set(new TextEncoder().encode("\x13BitTorrent protocol")); hs[25] = 0x10;
		hs.set(Uint8Array.from({length: 20}, () => 0x11), 28);
		const msg = (id, payload) => { const u = new Uint8Array(5 + payload.length); new DataView(u.buffer).setUint32(0, payload.length + 1); u[4] = id; u.set(payload, 5); return u; };
		const valid = [msg(20, I.bencode({m: {p2pcdn_info: 1}, info_size: 300})), msg(5, new Uint8Array([255])), msg(1, new Uint8Array()),
			msg(6, new Uint8Array(12)), msg(20, new Uint8Array([1, ...I.bencode({msg_type: 1, piece: 0, total_size: 300}), 1, 2, 3])), msg(4, new Uint8Array(4))];
		for (let i = 0; i < 4000; i++) {
			const t = new I.Transfer(node, hash);
			t.wanted = i % 2 === 0;
			const w = new I.Wire(t, "33".repeat(20), false);
			t.addWire(w);
			let stream = [hs];
			for (let k = rnd(6); k >= 0; k--) stream.push(valid[rnd(valid.length)].slice());
			if (i % 3 === 0) stream.push(bytes(rnd(64)));
			const all = new Uint8Array(stream.reduce((n, s) => n + s.length, 0));
			let o = 0; for (const s of stream) { all.set(s, o); o += s.length; }
			for (let m = rnd(4); m > 0; m--) all[rnd(all.length)] = rnd(256); // mutate, sometimes the handshake too
			try {
				for (let p = 0; p < all.length;) { const n = 1 + rnd(40); w._onData(all.slice(p, p + n)); p += n; } // arbitrary splits
			} catch (e) { escaped++; }
			if (w.closed) closedByError++;
			runs++;
		}
		let bescaped = 0;
		for (let i = 0; i < 20000; i++) {
			const u = i % 2 ? bytes(rnd(32)) : I.bencode({a: [1, "x", {b: 2}], n: -5});
			if (i % 2 === 0) u[rnd(u.length)] = rnd(256);
			try { I.bdecode(u); } catch (e) { if (!(e instanceof Error) || !e.message.startsWith("bencode")) bescaped++; }
		}
		const deep = new TextEncoder().encode("l".repeat(100000));
		try { I.bdecode(deep); bescaped++; } catch (e) { if (!e.message.startsWith("bencode")) bescaped++; }
		const link = new I.MediatorLink("ws://127.0.0.1:1", ["websocket"], () => {});
		let events = 0; link.on("event", () => events++);
		for (const s of ["2", "2[", "2{}", "2[1]", "2[\"x\"", "4", "0{", "2" + "[".repeat(5000), "2[\"peers\",\"`+"aa"+`\"]"]) {
			try { link._onMessage({ close() {} }, s); } catch (e) { escaped++; }
		}
		await new Promise((r) => setTimeout(r, 500));
		return {escaped, rejections, closedByError, runs, bescaped, events};
	})()`)
	t.Logf("%v", res)
	if res["escaped"] != float64(0) || res["rejections"] != float64(0) || res["bescaped"] != float64(0) {
		t.Fatalf("decoders let errors escape: %v", res)
	}
	if res["closedByError"] == float64(0) {
		t.Fatalf("no garbage input closed a connection: %v", res)
	}
	if res["events"] != float64(1) {
		t.Errorf("MediatorLink emitted %v events for 1 well-formed one: %v", res["events"], fmt.Sprint(res))
	}
}

// TestSeederAnswersPrototypeDownloader plays the prototype's downloader
// against a seeding Wire over a fake data channel: handshake, bitfield,
// interested, then one whole-piece request (200000 bytes) per piece,
// including the short last piece, which must be answered with the bytes
// that exist. It also checks the seeder's opening sequence and that no
// data-channel message exceeds 64 KiB.
func TestSeederAnswersPrototypeDownloader(t *testing.T) {
	base := startMediator(t).URL()
	b := chromium.New(t)
	navigate(t, b.Tab(), base+"/test.html")
	res := eval[map[string]any](t, b.Tab(), `(async () => { `+genJS+`
		const I = p2pcdn._internal, size = 450000, file = gen(size);
		const info = await p2pcdn.hashBlob(new Blob([file]), "p.bin");
		const node = { peerId: "22".repeat(20), log() {}, closed: false, _announce() {} };
		const t = new I.Transfer(node, info.full_hash);
		t.setInfo(info); t.setSource(new Blob([file]));
		const out = []; let biggest = 0;
		const dc = { readyState: "open", bufferedAmount: 0, send(u) { biggest = Math.max(biggest, u.length); out.push(u.slice()); }, close() {} };
		const pc = { close() {} };
		const w = new I.Wire(t, "33".repeat(20), false);
		t.addWire(w); w.attach(pc, dc);
		const msg = (id, p) => { const u = new Uint8Array(5 + p.length); new DataView(u.buffer).setUint32(0, p.length + 1); u[4] = id; u.set(p, 5); return u; };
		const req = (i) => { const p = new Uint8Array(12), v = new DataView(p.buffer); v.setUint32(0, i); v.setUint32(4, 0); v.setUint32(8, 200000); return msg(6, p); };
		const hs = new Uint8Array(68); hs.set(new TextEncoder().encode("\x13BitTorrent protocol")); hs[25] = 0x10;
		hs.set(Uint8Array.from(info.full_hash.match(/../g), (h) => parseInt(h, 16)), 28);
		w._onData(hs);
		w._onData(msg(20, I.bencode({m: {}})));
		w._onData(msg(5, new Uint8Array(1)));
		w._onData(msg(2, new Uint8Array(0)));
		for (let i = 0; i < info.pieces_amount; i++) w._onData(req(i));
		for (let k = 0; k < 100 && (w.uploading || w.uploads.length); k++) await new Promise((r) => setTimeout(r, 50));
		// Parse what the seeder sent, as a byte stream.
		const all = new Uint8Array(out.reduce((n, u) => n + u.length, 0)); let o = 0; for (const u of out) { all.set(u, o); o += u.length; }
		const ids = [], pieces = [];
		let p = 68, ok = all[0] === 19;
		while (p + 4 <= all.length) {
			const len = new DataView(all.buffer, p, 4).getUint32(0), id = all[p + 4];
			ids.push(id);
			if (id === 7) {
				const v = new DataView(all.buffer, p + 5, 8), data = all.subarray(p + 13, p + 4 + len);
				const idx = v.getUint32(0), begin = v.getUint32(4);
				const want = file.subarray(idx * 200000 + begin, idx * 200000 + begin + data.length);
				pieces.push({idx, len: data.length, same: data.every((x, j) => x === want[j])});
			}
			p += 4 + len;
		}
		return {ok, closed: w.closed, ids: ids.slice(0, 4), pieces, biggest, rest: all.length - p};
	})()`)
	t.Logf("%v", res)
	if res["ok"] != true || res["closed"] != false || res["rest"] != float64(0) {
		t.Fatalf("seeder stream malformed: %v", res)
	}
	if fmt.Sprint(res["ids"]) != "[20 5 1 7]" {
		t.Errorf("seeder sent %v first, want extended handshake, bitfield, unchoke, piece", res["ids"])
	}
	if fmt.Sprint(res["pieces"]) != "[map[idx:0 len:200000 same:true] map[idx:1 len:200000 same:true] map[idx:2 len:50000 same:true]]" {
		t.Errorf("pieces answered: %v", res["pieces"])
	}
	if big, _ := res["biggest"].(float64); big > 65536 {
		t.Errorf("a data-channel message of %v bytes exceeds 64 KiB", big)
	}
}

// TestMediationInputSurvivesGarbage feeds a node random values where the
// mediator's established argument, ice_servers answers, peers lists and
// signals (marked and unmarked offers with bogus SDP, answers, candidates)
// go. Nothing may escape as an exception or an unhandled rejection, the ICE
// servers kept must always be ones RTCPeerConnection takes, the batch limit
// stays sane, and every connection the bogus offers started is closed again.
func TestMediationInputSurvivesGarbage(t *testing.T) {
	base := startMediator(t).URL()
	b := chromium.New(t)
	navigate(t, b.Tab(), base+"/test.html")
	res := eval[map[string]any](t, b.Tab(), `(async () => {
		let escaped = 0, rejections = 0, badIce = 0, badBatch = 0, keptSome = 0;
		window.addEventListener("unhandledrejection", () => rejections++);
		const rnd = (n) => Math.floor(Math.random() * n), pick = (a) => a[rnd(a.length)];
		const keys = ["p2pcdn", "batch", "ice_servers", "ice_expires", "urls", "username", "credential", "type", "sdp", "candidate", "trickle"];
		const atoms = () => pick([0, 1, -1, 2.5, 1e12, NaN, "", "x", "stun:a.example", "turn:a.example?transport=udp", "turns:x:1", "http://x", "stun:" + "a".repeat(600),
			null, true, [], {}, "v=0\r\n", "candidate:1 1 udp 1 127.0.0.1 9 typ host", Date.now() / 1000 + 5]);
		const junk = (d) => { const k = rnd(d > 3 ? 1 : 4);
			if (k === 0) return atoms();
			if (k === 1) return Array.from({length: rnd(5)}, () => junk(d + 1));
			const o = {}; for (let i = rnd(5); i > 0; i--) o[pick(keys)] = junk(d + 1); return o; };
		// Mostly the right shape with random values, sometimes anything.
		const server = () => ({urls: pick([atoms(), [atoms(), atoms()], ["stun:a.example:3478", atoms()]]), username: pick([atoms(), "u"]), credential: pick([atoms(), "p"])});
		const caps = () => rnd(4) ? {p2pcdn: pick([1, 1, atoms()]), batch: pick([atoms(), 5, 100000]), ice_servers: pick([Array.from({length: rnd(4)}, server), junk(1)]), ice_expires: atoms()} : junk(0);
		const node = new p2pcdn.Node({mediator: "ws://127.0.0.1:1", iceServers: []});
		node.established = true; node.link.send = () => true; // a mediator that takes everything
		const hash = "11".repeat(20), t = node._transfer(hash); t.wanted = true;
		const ids = Array.from({length: 8}, (_, i) => String(i + 2).repeat(40).slice(0, 40));
		for (let i = 0; i < 3000; i++) {
			try {
				switch (i % 5) {
				case 0: node._onEvent("established", [caps()]); break;
				case 1: node.iceAsked = rnd(2) === 1; node._onEvent("ice_servers", [caps()]); break;
				case 2: node._onEvent("peers", [hash, pick([junk(0), ids.slice(0, rnd(8)), [pick(ids), junk(1)]])]); break;
				default: {
					const sig = pick([junk(0), {type: pick(["offer", "answer"]), sdp: pick(["v=0\r\n", "garbage", "", junk(1)]), trickle: pick([true, junk(1)]), p2pcdn: pick([1, junk(1)])},
						{type: "candidate", candidate: pick([junk(1), {candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMid: "0"}])}]);
					node._onEvent("signal", [pick([hash, junk(1)]), pick(ids), pick([JSON.stringify(sig), junk(1), "{"])]);
				}
				}
			} catch (e) { escaped++; }
			// Checked now and then: Chromium caps live peer connections, and closed ones linger until collected.
			if (node.mediatorIce.length) keptSome++;
			if (i % 50 === 4) try { new RTCPeerConnection({iceServers: node.ice()}).close(); } catch (e) { badIce++; window.lastBad = JSON.stringify(node.ice()) + ": " + e.message; }
			const cb = node.capabilities && node.capabilities.batch;
			if (cb !== undefined && cb !== null && !(Number.isInteger(cb) && cb >= 0 && cb <= 10000)) badBatch++;
			if (i % 100 === 0) await new Promise((r) => setTimeout(r, 0));
		}
		// Every verdict is also the browser's: a connection takes what was kept.
		const kept = node.ice();
		// Bogus offers and dials fail or time out; give them a little while.
		for (let k = 0; k < 100 && node.nconns > 0; k++) await new Promise((r) => setTimeout(r, 300));
		const left = node.nconns;
		node.close();
		await new Promise((r) => setTimeout(r, 300));
		return {escaped, rejections, badIce, badBatch, left, keptSome, lastBad: window.lastBad || "", kept: JSON.stringify(kept)};
	})()`)
	t.Logf("%v", res)
	if res["escaped"] != 0.0 || res["rejections"] != 0.0 || res["badIce"] != 0.0 || res["badBatch"] != 0.0 {
		t.Fatalf("garbage from the mediator got through: %v", res)
	}
	if k, _ := res["keptSome"].(float64); k < 10 {
		t.Errorf("the garbage left ICE servers to check only %v times; the generator is too weak", k)
	}
	if res["left"] != 0.0 {
		t.Errorf("%v connections started by garbage are still open after 30 s", res["left"])
	}
}

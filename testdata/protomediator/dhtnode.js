// A bare DHT node driven as the prototype's mediator drives npm
// bittorrent-dht 10 (PROTOCOL.md section 6), for internal/federation tests.
// It binds loopback only and never contacts a node it was not given.
//
// usage: node dhtnode.js ID [BOOTSTRAP_HOST:PORT]
// stdin: one JSON command per line:
//   {"cmd":"announce","hash":H,"port":P}   dht.announce(Buffer.from(H, "utf-8"), P)
//   {"cmd":"lookup","hash":H}              dht.lookup(Buffer.from(H, "utf-8"))
// stdout: one JSON object per line:
//   {"ev":"listening","port":P}, {"ev":"ready","nodes":N},
//   {"ev":"announced","hash":H,"nodes":N,"err":E}, {"ev":"looked_up","hash":H,"nodes":N,"err":E},
//   {"ev":"peer","hash":H,"host":A,"port":P}   (a value found by a lookup)
//   {"ev":"announce_peer","hash":H,"host":A}   (an announce stored here)
// It exits when stdin closes, so the test owns its lifetime.
"use strict";
const DHT = require("bittorrent-dht");
const readline = require("readline");

const [id, bootstrap] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
// The key is the hash's ASCII bytes; print it back as text.
const text = (buf) => Buffer.from(buf).toString("utf-8");

const dht = new DHT({ nodeId: id, bootstrap: bootstrap ? [bootstrap] : false, host: "localhost" });
dht.on("error", (err) => out({ ev: "error", message: String(err && err.message) }));
dht.on("warning", () => {});
dht.on("ready", () => out({ ev: "ready", nodes: dht.toJSON().nodes.length }));
dht.on("peer", (peer, infoHash) => out({ ev: "peer", hash: text(infoHash), host: peer.host, port: peer.port }));
dht.on("announce_peer", (infoHash, peer) => out({ ev: "announce_peer", hash: text(infoHash), host: peer.host }));
dht.listen(0, "127.0.0.1", () => out({ ev: "listening", port: dht.address().port }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const c = JSON.parse(line);
  const key = Buffer.from(c.hash, "utf-8");
  const done = (ev) => (err, n) => out({ ev, hash: c.hash, nodes: n || 0, err: err ? String(err.message) : null });
  if (c.cmd === "announce") dht.announce(key, c.port, done("announced"));
  else if (c.cmd === "lookup") dht.lookup(key, done("looked_up"));
});
process.stdin.on("end", () => dht.destroy(() => process.exit(0)));

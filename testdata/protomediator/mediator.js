// A stand-in for the prototype's mediator, written from PROTOCOL.md sections
// 4-6 with the npm packages the prototype used (socket.io 4.5,
// socket.io-client 4.5, bittorrent-dht 10), for the federation tests in
// internal/e2e. It keeps the prototype's contract and its quirks:
//   - the DHT key is the 40 ASCII bytes of the hex hash; node id = mediator id;
//     bootstrap only from the node given (none: it adds itself once ready);
//     host "localhost", so its own announcements are stored as 0.0.0.0;
//   - it announces when a peer announces, looks a hash up when a peer asks
//     for one it has too few seeders of, and skips mediators found at 0.0.0.0;
//   - it links to the mediators found with socket.io-client's default options
//     (long-polling, then the upgrade to WebSocket), one link per host:port,
//     sends handshake(id, 1) and, once established, get_peers;
//   - it answers get_peers only when it knows the hash (otherwise silence),
//     to mediators with its local peers only;
//   - finish removes the peer from every hash;
//   - signals to and from other mediators carry sender id + receiver id.
// Unlike the prototype it binds loopback only (tests never leave the host).
//
// usage: node mediator.js SOCKETIO_PORT DHT_PORT [BOOTSTRAP_HOST:PORT]   (0 = any free port)
// stdout: one JSON object per line, for the test to follow:
//   {"ev":"listening","port":P,"dht":D,"id":ID}  once both sockets listen
//   {"ev":"announced","hash":H,"nodes":N}        a DHT announce finished
//   {"ev":"dht_peer","hash":H,"host":A,"port":P} a lookup found a mediator
//   {"ev":"link","addr":A,"transport":T}         a link to a mediator connected (handshake sent)
//   {"ev":"upgraded","addr":A,"transport":T}     that link's transport was upgraded
// It exits on SIGTERM or when stdin closes, so the test owns its lifetime.
"use strict";
const http = require("http");
const crypto = require("crypto");
const { Server } = require("socket.io");
const { io: connect } = require("socket.io-client");
const DHT = require("bittorrent-dht");

const [ioPortArg, dhtPortArg, bootstrap] = process.argv.slice(2);
const MIN_SEEDERS = 3; // fewer local seeders than this: look the hash up
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const isHash = (h) => typeof h === "string" && /^[0-9a-f]{40}$/.test(h);

// The prototype derives its ids from SHA-1 of a random number.
const id = crypto.createHash("sha1").update(String(Math.random())).digest("hex");

const peers = new Map(); // local peer id -> socket
const seeders = new Map(); // hash -> Set of local peer ids (kept once known)
const routes = new Map(); // remote peer id -> socket of the mediator it is behind
const links = new Map(); // "host:port" -> {socket, established, hashes, answers: Map(hash -> ids)}
const askers = new Map(); // hash -> Set of local sockets waiting for remote peers
const lookingUp = new Set();

function remoteIDs(hash) {
  const ids = new Set();
  for (const l of links.values()) for (const p of l.answers.get(hash) || []) ids.add(p);
  return ids;
}

function answer(socket, self, hash) {
  const ids = new Set([...(seeders.get(hash) || []), ...remoteIDs(hash)]);
  ids.delete(self);
  socket.emit("peers", hash, [...ids]);
}

// A signal from another mediator: sender id + receiver id.
function fromMediator(socket, hash, relayID, data) {
  if (typeof relayID !== "string" || relayID.length !== 80) return;
  const from = relayID.slice(0, 40);
  const to = relayID.slice(40);
  routes.set(from, socket);
  const p = peers.get(to);
  if (p) p.emit("signal", hash, from, data);
}

function link(host, port, hash) {
  const addr = `${host}:${port}`;
  let l = links.get(addr);
  if (!l) {
    const socket = connect(`ws://${addr}`); // default options, as the prototype
    l = { socket, established: false, hashes: new Set(), answers: new Map() };
    links.set(addr, l);
    // The engine's first transport, seen before the upgrade can start.
    let first = null;
    socket.io.on("open", () => {
      const engine = socket.io.engine;
      first = engine.transport.name;
      engine.once("upgrade", (t) => out({ ev: "upgraded", addr, transport: t.name }));
    });
    socket.on("connect", () => {
      socket.emit("handshake", id, 1);
      out({ ev: "link", addr, transport: first });
    });
    socket.on("established", () => {
      l.established = true;
      for (const h of l.hashes) socket.emit("get_peers", h);
    });
    socket.on("peers", (h, ids) => {
      if (!isHash(h) || !Array.isArray(ids)) return;
      l.answers.set(h, ids.filter((p) => typeof p === "string"));
      for (const p of ids) routes.set(p, socket);
      for (const s of askers.get(h) || []) if (s.connected) answer(s, s.data.self, h);
    });
    socket.on("signal", (h, relayID, data) => fromMediator(socket, h, relayID, data));
  }
  if (!l.hashes.has(hash)) {
    l.hashes.add(hash);
    if (l.established) l.socket.emit("get_peers", hash);
  }
}

function lookup(hash, asker) {
  if (!askers.has(hash)) askers.set(hash, new Set());
  askers.get(hash).add(asker);
  // Ask linked mediators again: their peers come and go.
  for (const l of links.values()) if (l.established && l.hashes.has(hash)) l.socket.emit("get_peers", hash);
  if (lookingUp.has(hash)) return;
  lookingUp.add(hash);
  dht.lookup(Buffer.from(hash, "utf-8"), () => lookingUp.delete(hash));
}

const server = http.createServer();
const ioServer = new Server(server, { cors: { origin: "*" } });
ioServer.on("connection", (socket) => {
  let type = null;
  socket.data.self = null;
  socket.on("handshake", (pid, t) => {
    if (typeof pid !== "string") return;
    if (t === 1) {
      type = 1;
    } else {
      type = 0;
      socket.data.self = pid;
      peers.set(pid, socket);
    }
    socket.emit("established");
  });
  socket.on("announce", (hash) => {
    if (type !== 0 || !isHash(hash)) return;
    if (!seeders.has(hash)) seeders.set(hash, new Set());
    seeders.get(hash).add(socket.data.self);
    dht.announce(Buffer.from(hash, "utf-8"), ioPort, (err, n) =>
      out({ ev: "announced", hash, nodes: n || 0, err: err ? String(err.message) : null }));
  });
  socket.on("finish", () => {
    if (type !== 0) return;
    for (const s of seeders.values()) s.delete(socket.data.self);
  });
  socket.on("get_peers", (hash) => {
    if (!isHash(hash)) return;
    if (type === 1) {
      if (seeders.has(hash)) socket.emit("peers", hash, [...seeders.get(hash)]);
      return;
    }
    if (type !== 0) return;
    const local = [...(seeders.get(hash) || [])].filter((p) => p !== socket.data.self);
    if (local.length < MIN_SEEDERS) lookup(hash, socket);
    if (seeders.has(hash) || remoteIDs(hash).size > 0) answer(socket, socket.data.self, hash);
  });
  socket.on("signal", (hash, pid, data) => {
    if (type === 1) return fromMediator(socket, hash, pid, data);
    if (type !== 0 || typeof pid !== "string") return;
    const self = socket.data.self;
    const to = peers.get(pid);
    if (to) return to.emit("signal", hash, self, data);
    const via = routes.get(pid);
    if (via && via.connected) via.emit("signal", hash, self + pid, data);
  });
  socket.on("disconnect", () => {
    const self = socket.data.self;
    if (type !== 0 || peers.get(self) !== socket) return;
    peers.delete(self);
    for (const s of seeders.values()) s.delete(self);
    for (const a of askers.values()) a.delete(socket);
  });
});

let ioPort = 0;
const dht = new DHT({ nodeId: id, bootstrap: bootstrap ? [bootstrap] : false, host: "localhost" });
dht.on("warning", () => {});
dht.on("error", (err) => out({ ev: "error", message: String(err && err.message) }));
dht.on("peer", (peer, infoHash) => {
  const hash = Buffer.from(infoHash).toString("utf-8");
  out({ ev: "dht_peer", hash, host: peer.host, port: peer.port });
  if (peer.host === "0.0.0.0" || !isHash(hash)) return;
  link(peer.host, peer.port, hash);
});
dht.on("ready", () => {
  if (bootstrap) return;
  // The prototype passes its configured DHT port; with port 0 that is known
  // once listening.
  const addSelf = () => dht.addNode({ host: "localhost", port: dht.address().port });
  if (dht.listening) addSelf();
  else dht.once("listening", addSelf);
});

// Right after creating the DHT, as the prototype does: its bootstrap (on
// the next tick) would otherwise bind the socket to a random port first.
let pending = 2;
const listening = () => {
  if (--pending === 0) out({ ev: "listening", port: ioPort, dht: dht.address().port, id });
};
dht.listen(Number(dhtPortArg), "127.0.0.1", listening);
server.listen(Number(ioPortArg), "127.0.0.1", () => {
  ioPort = server.address().port;
  listening();
});

function stop() {
  for (const l of links.values()) l.socket.close();
  ioServer.close();
  dht.destroy(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", stop);
process.stdin.on("end", stop);
process.stdin.resume();

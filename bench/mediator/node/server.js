// Baseline mediator for bench/mediator: the same events as ours on the stock
// socket.io 4 server, with no validation or limits beyond what the workload
// needs. usage: node server.js PORT  (listens on 127.0.0.1 only)
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2] || 18888);
const httpServer = http.createServer();
const io = new Server(httpServer, { cors: { origin: "*" } });
const byId = new Map(); // peer id -> socket
const seeders = new Map(); // hash -> Set of peer ids

io.on("connection", (socket) => {
  let id = null;
  const mine = new Set();
  socket.on("handshake", (peerId) => {
    id = String(peerId);
    byId.set(id, socket);
    socket.emit("established");
  });
  socket.on("announce", (hash) => {
    if (id === null) return;
    if (!seeders.has(hash)) seeders.set(hash, new Set());
    seeders.get(hash).add(id);
    mine.add(hash);
  });
  socket.on("finish", (hash) => {
    const s = seeders.get(hash);
    if (s) s.delete(id);
    mine.delete(hash);
  });
  socket.on("get_peers", (hash) => {
    const ids = [];
    for (const p of seeders.get(hash) || []) {
      if (p !== id) ids.push(p);
      if (ids.length === 50) break;
    }
    socket.emit("peers", hash, ids);
  });
  socket.on("signal", (hash, to, data) => {
    const s = byId.get(to);
    if (s) s.emit("signal", hash, id, data);
  });
  socket.on("disconnect", () => {
    if (id !== null && byId.get(id) === socket) byId.delete(id);
    for (const h of mine) {
      const s = seeders.get(h);
      if (s) s.delete(id);
    }
  });
});
httpServer.listen(port, "127.0.0.1");
process.on("SIGINT", () => process.exit(0));
process.on("SIGTERM", () => process.exit(0));

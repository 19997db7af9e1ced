// A socket.io 4.x server driven by internal/socketio tests: it listens on 127.0.0.1 (random port), prints
// {"port":N} on stdout and exits when stdin closes.
// usage: node server.js [pingIntervalMs pingTimeoutMs]
// For each connection it emits welcome(<socket id>) and answers:
//   echo(...args) -> echoed(...args)
//   kick()        -> disconnects the socket from the server side
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const [pingInterval = "25000", pingTimeout = "20000"] = process.argv.slice(2);
const report = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const httpServer = http.createServer();
const io = new Server(httpServer, {
  pingInterval: Number(pingInterval),
  pingTimeout: Number(pingTimeout),
  cors: { origin: "*" },
});
io.on("connection", (socket) => {
  report({ ev: "connection", id: socket.id, transport: socket.conn.transport.name });
  socket.emit("welcome", socket.id);
  socket.on("echo", (...args) => socket.emit("echoed", ...args));
  socket.on("kick", () => socket.disconnect(true));
  socket.on("disconnect", (reason) => report({ ev: "disconnect", id: socket.id, reason }));
});
httpServer.listen(0, "127.0.0.1", () => report({ port: httpServer.address().port }));
process.stdin.on("end", () => {
  io.close();
  process.exit(0);
});
process.stdin.resume();

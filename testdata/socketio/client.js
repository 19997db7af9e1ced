// A socket.io-client 4.x peer driven by internal/socketio tests.
// usage: node client.js URL [websocket|polling]   (default: socket.io-client's own, polling then upgrade)
// It reports what happens as JSON lines on stdout and reacts to the server's events:
//   echo(...args)   -> emits echoed(...args)
//   transport()     -> emits transport(<current engine transport name>)
//   bye()           -> disconnects (the process stays until stdin closes so the disconnect is sent)
// On connect it emits hello(<transport>) and a burst of 20 numbered "burst" events, which socket.io-client
// batches into few polling requests. It exits when stdin closes, so the test owns its lifetime.
"use strict";
const { io } = require("socket.io-client");

const [url, mode] = process.argv.slice(2);
const opts = { reconnection: false, timeout: 10000 };
if (mode) opts.transports = [mode];

const report = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const socket = io(url, opts);

// The upgrade may complete before the namespace is connected, so listen as soon as the engine is open;
// events emitted before "connect" are buffered by socket.io-client.
socket.io.on("open", () => {
  socket.io.engine.on("upgrade", (t) => {
    report({ ev: "upgrade", transport: t.name });
    socket.emit("upgraded", t.name);
  });
});
socket.on("connect", () => {
  const engine = socket.io.engine;
  report({ ev: "connect", id: socket.id, transport: engine.transport.name });
  socket.emit("hello", engine.transport.name);
  for (let i = 0; i < 20; i++) socket.emit("burst", i, { text: "päckchen \u2603 " + i });
});
socket.on("echo", (...args) => socket.emit("echoed", ...args));
socket.on("transport", () => socket.emit("transport", socket.io.engine.transport.name));
socket.on("bye", () => {
  socket.disconnect();
  report({ ev: "bye" });
});
socket.on("connect_error", (err) => report({ ev: "connect_error", message: String(err && err.message) }));
socket.on("disconnect", (reason) => report({ ev: "disconnect", reason }));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();

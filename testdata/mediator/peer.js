// A socket.io-client 4.x peer driven by internal/mediator tests, standing in
// for the prototype's browser peer (which uses socket.io-client defaults).
// usage: node peer.js URL [websocket]
// stdin: one JSON array per line, emitted as an event: ["handshake","<id>",0]
// stdout: one JSON object per line: {"ev":"open","transport":...},
//   {"ev":"connect","transport":...},
//   {"ev":"upgrade","transport":...}, {"ev":"event","name":...,"args":[...]},
//   {"ev":"disconnect","reason":...}, {"ev":"connect_error","message":...}
// It exits when stdin closes, so the test owns its lifetime.
"use strict";
const { io } = require("socket.io-client");
const readline = require("readline");

const [url, mode] = process.argv.slice(2);
const opts = { reconnection: false, timeout: 10000 };
if (mode === "websocket") opts.transports = ["websocket"];

const report = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const socket = io(url, opts);
const pending = [];
let connected = false;

// The engine opens (first transport) before the namespace connects, and
// may upgrade before or after that.
socket.io.on("open", () => {
  const engine = socket.io.engine;
  report({ ev: "open", transport: engine.transport.name });
  engine.on("upgrade", (t) => report({ ev: "upgrade", transport: t.name }));
});
socket.on("connect", () => {
  report({ ev: "connect", transport: socket.io.engine.transport.name });
  connected = true;
  for (const args of pending.splice(0)) socket.emit(...args);
});
socket.onAny((name, ...args) => report({ ev: "event", name, args }));
socket.on("connect_error", (err) => report({ ev: "connect_error", message: String(err && err.message) }));
socket.on("disconnect", (reason) => report({ ev: "disconnect", reason }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const args = JSON.parse(line);
  if (connected) socket.emit(...args);
  else pending.push(args);
});
process.stdin.on("end", () => process.exit(0));

// Stands in for a prototype mediator connecting to ours over REPLICATION:
// npm socket.io-client 4.x starting with HTTP long-polling and base64
// payloads (b64=1), as the prototype's mediator does.
// usage: node replicate.js URL
// stdin: one JSON array per line, emitted as an event.
// stdout: one JSON object per line: {"ev":"connect","transport":...},
//   {"ev":"event","name":...,"args":[...]}, {"ev":"disconnect","reason":...},
//   {"ev":"connect_error","message":...}
// It exits when stdin closes, so the test owns its lifetime.
"use strict";
const { io } = require("socket.io-client");
const readline = require("readline");

const url = process.argv[2];
const socket = io(url, {
  transports: ["polling"],
  forceBase64: true,
  reconnection: false,
  timeout: 10000,
});
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const queued = [];
socket.on("connect", () => {
  out({ ev: "connect", transport: socket.io.engine.transport.name, query: socket.io.engine.transport.query });
  for (const args of queued.splice(0)) socket.emit(...args);
});
socket.onAny((name, ...args) => out({ ev: "event", name, args }));
socket.on("connect_error", (err) => out({ ev: "connect_error", message: String(err && err.message) }));
socket.on("disconnect", (reason) => out({ ev: "disconnect", reason }));
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const args = JSON.parse(line);
  if (socket.connected) socket.emit(...args);
  else queued.push(args);
});
process.stdin.on("end", () => process.exit(0));

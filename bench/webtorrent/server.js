// A bittorrent-tracker WebSocket server on 127.0.0.1 for `go run ./bench`:
// WebTorrent peers in headless Chromium meet here, never on public trackers.
// Usage: node server.js PORT   (prints "listening ws://127.0.0.1:PORT" when ready)
import Server from 'bittorrent-tracker/server'

const port = Number(process.argv[2])
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.js PORT')
  process.exit(2)
}
const server = new Server({ udp: false, http: false, ws: true, stats: false, trustProxy: false })
server.on('error', (err) => { console.error(`tracker: ${err.message}`); process.exit(1) })
server.on('warning', (err) => console.error(`tracker warning: ${err.message}`))
server.on('listening', () => console.log(`listening ws://127.0.0.1:${port}`))
server.listen(port, '127.0.0.1')
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)))

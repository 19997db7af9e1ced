// Package federation lets p2pcdn mediators find each other through the
// BitTorrent Mainline DHT (BEP 5) and relay for each other's peers over
// REPLICATION connections (PROTOCOL.md sections 5 and 6).
//
// Each mediator runs one DHT node (github.com/anacrolix/dht/v2) whose node id
// is its mediator id. It announces every hash that has seeders connected to it,
// with its Socket.IO port as the BEP 5 port; when its own peers ask for a hash,
// it looks the hash up, opens a Socket.IO client connection to each mediator
// found (handshake type 1, then get_peers) and merges their answers into its
// own. Signals to remote peers go over those connections with the
// 80-character relay id (sender id, then receiver id).
//
// # DHT keys
//
// The key of a file is its full hash hex-decoded: 40 hex characters are
// exactly the 20 bytes of a BEP 5 info hash, so every standard node stores and
// routes it. The prototype instead uses the 40 ASCII bytes of the hex string,
// which is not a valid info hash. anacrolix/dht v2.23.0 silently keeps the
// first 20 bytes of such a key (read in its krpc.ID decoder); libtorrent's
// message parser requires 20 bytes and so should reject it, and
// bittorrent-dht (the prototype's own library) stores it under the whole 40
// bytes (the last two from reading their sources, not tested here). So our
// mediators and prototype mediators do not find each other in the DHT;
// federating with them would take announcing and looking up the 40-byte key
// too, through a node that accepts it. Prototype mediators can still connect to
// ours directly: the mediator server accepts their REPLICATION handshakes.
//
// The "relay key" of a file is SHA-1("p2pcdn relay " + full hash hex). A
// mediator announces it, with its Socket.IO port, while its peers are looking
// for the file through other mediators. A mediator whose seeder answers a
// remote downloader it has no link to looks the relay key up to find the
// downloader's mediator, because an answer must travel back to a mediator
// that connected to us, and the mediator server does not tell the federation
// which inbound REPLICATION connection a remote peer came through.
//
// Nothing is sent to public DHT routers unless Config.PublicBootstrap asks for
// them: a default mediator talks only to the bootstrap nodes it is given and
// to the nodes those tell it about.
package federation

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
// Answers go back the way offers came: the mediator server remembers through
// which inbound REPLICATION connection a remote peer's signal arrived, and a
// link remembers the same for signals arriving on connections we opened, so a
// seeder's answer needs no lookup. That also serves prototype mediators,
// which connect to us.
//
// The "relay key" of a file is SHA-1("p2pcdn relay " + full hash hex), the
// fallback when no connection knows the receiver (its mediator's connection
// closed or its route expired): a mediator announces the relay key, with its
// Socket.IO port, while its peers look for the file through other mediators,
// and a mediator with a signal for an unknown remote peer looks it up and
// sends the signal to each mediator found.
//
// Our own DHT node answers get_peers for the keys we announce with our own
// address, since an announce walk stores us only on other nodes. Announces
// that reach no node are retried after 1 s, doubling up to 30 s, and at once
// when the routing table stops being empty; a lookup that found nobody is
// repeated after 2 s, doubling up to the lookup interval, while local peers
// keep asking.
//
// Nothing is sent to public DHT routers unless Config.PublicBootstrap asks for
// them: a default mediator talks only to the bootstrap nodes it is given and
// to the nodes those tell it about.
package federation

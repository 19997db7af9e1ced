// Package federation lets p2pcdn mediators find each other through the
// BitTorrent Mainline DHT (BEP 5) and relay for each other's peers over
// REPLICATION connections (PROTOCOL.md sections 5 and 6).
//
// Each mediator runs one DHT node (github.com/anacrolix/dht/v2) whose node id
// is its mediator id. It announces every hash that has seeders connected to it,
// with its Socket.IO port as the BEP 5 port, through a fixed pool of workers
// fed by a bounded queue; when its own peers ask for a hash, it looks the hash
// up, opens a Socket.IO client connection to each mediator found (handshake
// type 1, then get_peers) and merges their answers into its own. Signals to remote peers go over those connections with the
// 80-character relay id (sender id, then receiver id).
//
// # DHT keys
//
// A file has two keys, and a mediator announces and looks up both:
//
//   - ours, the full hash hex-decoded: 40 hex characters are exactly the 20
//     bytes of a BEP 5 info hash, so every standard node stores and routes
//     it; anacrolix/dht handles it;
//   - the prototype's, the 40 ASCII bytes of the hex string (PROTOCOL.md
//     section 6; ProtoKey). anacrolix/dht keeps only the first 20 bytes of
//     such a key (its krpc.ID decoder), so a layer of ours handles it
//     (protodht.go, protowalk.go, krpc40.go).
//
// The 40-byte layer shares the node's UDP socket, id, routing table and send
// limiter. The packet guard in front of the socket (guard.go) hands it every
// get_peers and announce_peer query whose info_hash is 40 bytes, and every
// answer to its own queries (transaction ids "p4" + 2 bytes, which the
// library's varint ids never match); the library never sees them. It
// answers get_peers with a BEP 5 token (rotated every 5 minutes, valid for
// two rotations, bound to the asker's IP), the values stored under the key
// (IPv4 to IPv4 askers) and the 8 closest nodes of the routing table;
// announce_peer needs such a token and a port (or implied_port), and its
// values live PeerTTL in a store bounded like the library's (200 values per
// key, 100,000 keys). A value with the unspecified address (0.0.0.0) in an
// answer stands for the answering node itself: the prototype's mediator gives
// bittorrent-dht the host "localhost", which its encoder turns into 0.0.0.0,
// so that is how it stores its own announcements (and it skips such values
// itself; ours never hands them out).
//
// Walks for 40-byte keys are ours too: iterative get_peers, 3 queries in
// flight, towards the 8 closest nodes, each query resent once, at most 128
// nodes per walk and 512 queries awaiting answers in all; an announce ends
// with announce_peer to the 8 closest that answered with a token. "Closest"
// is what bittorrent-dht 10 means, so that walks of both meet: its k-bucket
// distance XORs two ids over the length of the shorter and counts each
// further byte as 0xff, so between a 40-byte key and 20-byte node ids only
// the key's first 20 bytes (the first 20 hex characters, as ASCII) order
// the nodes (protoTarget). Standard nodes (libtorrent, anacrolix) reject or
// truncate 40-byte keys, so prototype announcements are found only on
// prototype nodes and ours; a DHT of those is what the two generations share.
//
// Prototype mediators link to ours with socket.io-client's defaults
// (long-polling, then the upgrade to WebSocket), which the mediator server
// accepts as any REPLICATION connection; ours link to theirs over WebSocket
// and cope with their silence about hashes they do not know.
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
// The node keeps no BEP 44 items: it refuses put (the library's default store
// kept every item until a get found it expired).
//
// Nothing is sent to public DHT routers unless Config.PublicBootstrap asks for
// them: a default mediator talks only to the bootstrap nodes it is given and
// to the nodes those tell it about.
package federation

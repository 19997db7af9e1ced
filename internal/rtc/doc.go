// Package rtc carries p2pcdn's peer connections: WebRTC data channels on pion/webrtc, negotiated with
// simple-peer compatible signals (PROTOCOL.md section 7) and used as byte streams.
//
// # Signalling
//
// A signal is the JSON text {"type":"offer"|"answer","sdp":"..."} or a trickle candidate
// ({"type":"candidate","candidate":{...}} or {"candidate":{...}}); simple-peer's {"renegotiate":true}
// and {"transceiverRequest":...} are ignored. Our offers and answers are marked "trickle":true and
// "p2pcdn":1 (docs/extensions.md). An offer goes out with our host candidates and the later ones
// (server-reflexive, relayed) follow as candidate signals, which any answerer takes (simple-peer applies
// them whatever its own trickle setting).
// Toward a marked offer the answer goes out at once and our candidates follow as trickle signals;
// toward the prototype's unmarked offers it carries them all. The downloader calls Dial (offerer, one
// ordered reliable channel, by default with a random label); the seeder calls Accept with the offer it
// received. DialPeer and AcceptPeer also return the Peer, on which either side of a connection with a
// peer of ours may open more channels in-band (OpenChannel, Incoming).
//
// # Failing fast
//
// pion declares ICE failed only after its disconnected+failed timeouts from the start of checks. A
// negotiation watches its candidate pairs instead and gives up with an *ICEError (which candidate
// kinds each side had, whether STUN/TURN was configured) once every pair has failed and nothing has
// changed for a second, at least 2 s (dialer) or 4 s (answerer) after the remote description; an
// offer with no usable candidate ends after 3 s. In the simulated internet of vnet_test.go two NATed
// peers without servers give up after about 2.8 s (TestICEFailsFastBehindNATs).
//
// # Messages
//
// We advertise a=max-message-size:262144 (Chromium's value) and accept messages that large, since the
// prototype writes each 200,000-byte block as one message; a larger message is an error that closes
// the connection. Conn ignores message boundaries: Read returns bytes, Write cuts them into messages.
//
// # Loopback mode
//
// Config.Loopback keeps every packet on 127.0.0.1: loopback interfaces only, UDP4 (and TCP4 with an
// ICE-TCP listener), mDNS off, remote
// candidates and peer-reflexive addresses other than loopback dropped (Chromium in a loopback-only
// namespace checks from 127.0.0.1 without announcing it, which is accepted).
//
// # Setup (measured)
//
// BenchmarkSetup times offer to open channel against plain pion exchanging complete SDP, in the same
// run (median setup time, medians of 3 runs of 5, load average 15-33 on 2 cores); BenchmarkSetupVariant
// measures pion's knobs alone. pion nominates a pair only once checks have run for a minimum time by
// kind (server-reflexive 0.5 s, peer-reflexive 1 s, relayed 2 s), and gathering waits up to 5 s for a
// STUN server that never answers. Taking any working pair at once (a relayed one after 300 ms, so a
// direct path found a little later wins), trickling toward our peers and sending the offer once
// the servers that answer have: over loopback x0.84-1.17 (no server, STUN, TURN: a host pair either
// way, within noise); in the simulated internet of internal/testing/simnet, public to cone NAT x0.36,
// cone to cone with STUN x0.48 (with TURN offered too x0.26, never relayed), symmetric NATs through
// TURN x0.31, the same with a STUN server that never answers x0.10 (1.3 s against 12.5 s).
//
// # Round trips (measured across a WAN delay, internal/e2e/wan)
//
// A connection costs ICE checks, DTLS and SCTP before its first byte, and slow start after. Three pion
// settings cut that: SNAP (the SCTP INIT rides in the SDP as a=sctp-init, so the association is up with
// DTLS; used only when both descriptions carry it), no DTLS HelloVerifyRequest when we are the DTLS
// server (ICE has already proved the remote's address), and an initial (and smallest) SCTP congestion
// window of 64 KiB instead of pion's 4 packets, which with the send window above fitted to the path lets
// a 1 MB transfer finish in a few round trips. Between two Go peers, first-check selection
// (firstcheck.go, docs/extensions.md) saves the round trip of ICE's nomination. With the rest of issue
// 16 (bench/results.md, WAN): a whole 1 MB get 80 ms away x0.41 the time of before (0.97 s against
// 2.34 s; 1.37x curl over HTTP, same run), a page's 1 MB fetch x0.47 (0.99 s, 12 round trips).
//
// # Throughput (measured)
//
// Benchmarks in bench_test.go move data over one loopback connection within one process. On the
// shared 2-core machine absolute MB/s swing by 10x between runs, so the defaults rest on ratios against
// BenchmarkRawPion (plain pion, default settings, OnMessage, 64 KiB messages, the usual 1 MiB / 512 KiB
// bufferedAmount flow control) measured in the same run, median over 8 runs:
//
//   - Conn with the defaults: x1.28 the speed of raw pion (74 vs 61 MB/s) and x0.89 the CPU per byte;
//     x1.36 in 6 runs under heavy load (load average ~13).
//   - UDP socket buffers of 4 MiB (SO_RCVBUF/SO_SNDBUF through SettingEngine.SetNet) are the one large
//     win: with the kernel's default the same Conn drops to x0.66. Bursts overflow a small buffer and
//     each loss can cost SCTP a retransmission timeout of at least 1 s.
//   - Write messages of 16 KiB: under load x1.98 against x1.36 for 64 KiB; on a quiet machine 8, 16
//     and 64 KiB are within noise (x1.23, x1.28, x1.24).
//   - Send window (see below): pion to pion, the 64 KiB window ran x1.45 the speed of raw pion, the
//     same as a fixed 1 MiB window (x1.46), median of 6 interleaved runs at load ~10, at ~10% more CPU
//     per byte (24 vs 21.6 ns/B). Earlier: fixed watermarks 256/128 KiB gave x1.18, 4/2 MiB x1.15.
//   - SCTP receive window 4 MiB: pion's 1 MiB gave x1.16.
//   - Detached channels: raw pion detached ran x0.66 (quiet) and x0.94 (loaded) of OnMessage, both with
//     the kernel's socket buffers, i.e. bound by the same losses. We detach for a plain blocking Read
//     without pion's per-message copy and callback.
//
// # Send window (browsers)
//
// Chromium reads each peer connection from a UDP socket with SO_RCVBUF 64 KiB (128 KiB after Linux
// doubles it, seen with ss -uam: rb131072), about 55 of pion's 1200-byte packets. pion sends whatever
// its congestion window allows at once, and in slow start on a short path that window outgrows the
// socket within a few round trips: at 1 MiB queued, 1 MiB to Chromium lost ~100 datagrams per
// transfer (UDP RcvbufErrors). pion then recovers slowly: RACK marks only first transmissions lost, so
// a lost retransmission waits for a tail-loss probe (one chunk every 2*SRTT+2 ms, highest TSN first)
// or the T3 timer (RTO at least 1 s, fixed in pion/sctp): 100 ms to over 1 s per megabyte, the
// "slow ramp" a cold channel to a browser showed. The fix is to keep less unacknowledged, since SCTP
// acknowledges only what left the browser's socket: Write holds the data channel's bufferedAmount (queued
// plus in flight) under a window of smallest-RTT x WindowRate, at least MinWindow (64 KiB) and at most
// HighWater. The first round trip is the one ICE measured with its checks (a browser answers those from
// its network thread, so a busy page cannot inflate them); without one the window stays at MinWindow
// until SCTP sampled the round trip 8 times (its first sample, the channel-open message, can be inflated
// by a busy browser). On loopback that is 64 KiB; on long paths the network spaces packets out and the
// window covers the bandwidth-delay product from the first byte. (Pacing Write at the window's rate did
// not help a page 80 ms away in netlab on a loaded machine: its socket still overflowed, now and then,
// from SCTP's own bursts on clumped acknowledgements, and fetches took longer: 2.8 s against 1.4 s,
// medians of 7 interleaved runs.) Same run, raw pion to Chromium, 1 MiB on an open channel:
// paced like this x0.39 the time of 1 MiB / 512 KiB watermarks (median of 12 runs), ~10 lost datagrams
// per transfer instead of ~100, worst case 77 ms instead of 1.06 s. For 64 MiB at load 15-25 the
// window ran x0.79 the speed of the 1 MiB watermarks (median of 7 runs): the price on a starved machine.
//
// # Send window (our peers)
//
// That price is not needed toward our native peers, whose sockets hold 4 MiB where the kernel allows
// (Config.SocketBuffer). Their offers and answers say so ("rcvbuf", the size the kernel reports for
// their ICE sockets, see docs/extensions.md), and the window toward them starts at half of it (Linux
// charges a datagram about twice its size), up to HighWater: everything in flight then fits in the
// remote's socket even if it stops reading for a while. A browser cannot say it and keeps the paced
// window. Messages are a quarter of the window, at most WriteChunk (64 KiB): 16 KiB toward a browser as
// before, 64 KiB between our peers. The window belongs to the peer connection, not the channel: its
// channels (a page fetching many files over one connection has one per file) feed one socket at the
// remote, so their buffered amounts together stay within it (pacer.go). The window alone (16 KiB
// messages still), between two processes on loopback, 256 MiB, median of 5 interleaved runs at load
// ~30: p2pcdn get x1.13 the speed of the fixed 64 KiB window, at x0.78 the CPU per byte (seed + get).
// Toward either kind of remote the window starts fitted to ICE's round trip (above), the floor being
// MinWindow toward a browser and half the advertised buffer toward ours; a browser's window above its
// floor is paced packet by packet beneath SCTP (wirepace.go, with its measurements). newPacer says how
// these fit together.
package rtc

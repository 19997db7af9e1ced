// Package rtc carries p2pcdn's peer connections: WebRTC data channels on pion/webrtc, negotiated with
// simple-peer compatible signals (PROTOCOL.md section 7) and used as byte streams.
//
// # Signalling
//
// A signal is the JSON text {"type":"offer"|"answer","sdp":"..."}. We always send complete SDP (all
// candidates gathered first), which is what the prototype understands. From others we also accept
// trickle candidates ({"type":"candidate","candidate":{...}} or {"candidate":{...}}) and ignore
// simple-peer's {"renegotiate":true} and {"transceiverRequest":...}. The downloader calls Dial (offerer,
// one ordered reliable channel with a random label); the seeder calls Accept with the offer it received.
//
// # Messages
//
// We advertise a=max-message-size:262144 (Chromium's value) and accept messages that large, since the
// prototype writes each 200,000-byte block as one message; a larger message is an error that closes
// the connection. Conn ignores message boundaries: Read returns bytes, Write cuts them into messages.
//
// # Loopback mode
//
// Config.Loopback keeps every packet on 127.0.0.1: loopback interfaces only, UDP4, mDNS off, remote
// candidates and peer-reflexive addresses other than loopback dropped (Chromium in a loopback-only
// namespace checks from 127.0.0.1 without announcing it, which is accepted).
//
// # Tuning (measured)
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
//   - Watermarks 1 MiB / 512 KiB: 256/128 KiB gave x1.18, 4/2 MiB x1.15.
//   - SCTP receive window 4 MiB: pion's 1 MiB gave x1.16.
//   - Detached channels: raw pion detached ran x0.66 (quiet) and x0.94 (loaded) of OnMessage, both with
//     the kernel's socket buffers, i.e. bound by the same losses. We detach for a plain blocking Read
//     without pion's per-message copy and callback.
package rtc

// Package peering joins torrents to the peers a mediator knows: it answers
// the WebRTC offers that arrive as mediation signals, dials the peers it is
// asked to, and hands every open data channel to the torrent of its file.
//
// A Host owns a process's connections on one mediator. Between two peers of
// ours it keeps one RTCPeerConnection and opens a data channel per file on
// it (docs/extensions.md, "One connection per pair of peers"); toward the
// prototype's peers it keeps one connection per file, as they expect. Each
// file joins the Host as a Link, and its torrent sees byte streams only.
//
// Both the seeder and the downloader use it: a downloader also answers
// offers, because it re-shares what it has while it downloads.
package peering

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/mediatorclient"
	"github.com/p2pcdn/p2pcdn/internal/rtc"
)

// Defaults for zero fields of Config and HostConfig.
const (
	// DefaultMaxPeers bounds one file's sessions (channels, negotiations and
	// files waiting for a connection to open).
	DefaultMaxPeers = 64
	// DefaultMaxConns bounds a Host's peer connections, negotiating or open.
	DefaultMaxConns = 128
	// DefaultMaxPerAddress is a quarter of DefaultMaxPeers: room for a few
	// peers behind one NAT, not for one host taking every slot.
	DefaultMaxPerAddress = 16
	// DefaultMaxChannels bounds the channels on one connection.
	DefaultMaxChannels = 64
	// DefaultSignalTimeout bounds a negotiation whose answer or channel never
	// comes; one whose ICE failed ends at once (rtc gives up within seconds).
	DefaultSignalTimeout = 15 * time.Second
	// DefaultMaxAttempts is how many failed dials in a row to a peer are made
	// before Connect skips it (for DefaultFailureMemory).
	DefaultMaxAttempts = 2
	// DefaultFailureMemory is how long a failed dial counts.
	DefaultFailureMemory = time.Minute
	// DefaultIdleTimeout: a shared connection with no channel left is closed
	// after this long (the browser library waits as long).
	DefaultIdleTimeout = 30 * time.Second
	// refusedMemory: a peer that refused a file's channel (it does not have
	// the file) is not asked for it again for this long.
	refusedMemory = 10 * time.Second
	// refusalBurst and refusalEvery: a remote may open channels we refuse
	// (a file we do not have, a label that names none, past MaxChannels) in
	// bursts of refusalBurst, then one per refusalEvery; beyond that its
	// connection is closed. Our own peers ask only for files a mediator
	// says we have, so they rarely meet a refusal; a hostile one would
	// otherwise make us pay for channel after channel (each refused channel
	// is drained for up to 10 s with a 256 KiB buffer: 600 MB for 3,000
	// refusals in 16 s).
	refusalBurst = 16
	refusalEvery = 2 * time.Second
	// maxUnheard bounds the channels we have opened on a connection and not
	// yet heard from. pion's SCTP queues at most 16 new incoming streams
	// until the remote accepts them and silently drops the data of any
	// stream beyond (its sender retransmits only after timeouts, ~30 s), and
	// our detached channels count as open as soon as the open message is
	// sent. Our peers speak first on every channel (the BitTorrent
	// handshake), so a channel heard from has been accepted.
	maxUnheard = 8
	// unheardTimeout is how long a channel we opened may stay unanswered.
	unheardTimeout = 5 * time.Second
	// maxRecords bounds the per-peer records a Host or Link keeps (failures,
	// refusals, prototype peers).
	maxRecords = 1024
)

// Torrent is what a Link feeds: swarm.Torrent. AddPeer runs the peer wire
// on conn until it ends and closes conn; initiator means we opened the
// channel, so we send the BitTorrent handshake first.
type Torrent interface {
	AddPeer(ctx context.Context, conn io.ReadWriteCloser, initiator bool, remote string) error
}

// Failure is an attempt to connect a peer that ended before its data channel
// opened.
type Failure struct {
	Peer      string // the remote peer id
	Hash      string // the file it was for
	Initiator bool   // we dialed; otherwise we answered its offer
	// Err says why; an *rtc.ICEError (errors.As) when ICE found no path
	// between the peers.
	Err error
}

// Config configures Join: a Link on a Host of its own. Fields shared with
// HostConfig and LinkConfig mean the same there.
type Config struct {
	Hash      string // full hash, 40 lowercase hex
	Client    *mediatorclient.Client
	Transport *rtc.Transport
	Torrent   Torrent
	Logger    *slog.Logger
	// MaxPeers bounds the sessions (negotiating or connected) of this hash,
	// so a flood of offers cannot exhaust the process.
	MaxPeers int
	// MaxPerAddress bounds the connections with one remote address.
	MaxPerAddress int
	// SignalTimeout bounds one WebRTC negotiation.
	SignalTimeout time.Duration
	// MaxAttempts and FailureMemory: after MaxAttempts failed dials in a row,
	// each within FailureMemory of the last, Connect skips the peer until
	// FailureMemory has passed.
	MaxAttempts   int
	FailureMemory time.Duration
	// OnFailure, if set, is called (without locks held; it must not block)
	// for each attempt that ended before its channel opened, other than by
	// Close.
	OnFailure func(Failure)
}

// Join starts routing hash's signals to cfg.Torrent until ctx ends or Close,
// on a Host of its own (no connection is shared with other files). A process
// serving several files makes one Host and joins each file to it instead.
func Join(ctx context.Context, cfg Config) *Link {
	h := NewHost(ctx, HostConfig{
		Client: cfg.Client, Transport: cfg.Transport, Logger: cfg.Logger,
		MaxConns: cfg.MaxPeers, MaxPerAddress: cfg.MaxPerAddress, SignalTimeout: cfg.SignalTimeout,
		MaxAttempts: cfg.MaxAttempts, FailureMemory: cfg.FailureMemory,
	})
	l := h.Join(LinkConfig{Hash: cfg.Hash, Torrent: cfg.Torrent, MaxPeers: cfg.MaxPeers, OnFailure: cfg.OnFailure})
	l.private = true
	return l
}

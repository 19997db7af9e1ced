package federation

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// Bounds of announcing. A DHT announce is a walk of a few dozen packets, so
// a mediator with many hashes is limited by its send rate, not by how many
// walks it starts: a few workers keep the pipe full.
const (
	announceWorkers = 4      // announce walks at once
	announceQueue   = 64     // announcements waiting for a worker
	maxAnnounced    = 200000 // keys tracked at once; the rest wait for room
	minScanGap      = 250 * time.Millisecond
)

// announcement is the state of one key we announce.
type announcement struct {
	key     [20]byte
	hash    string // the file's full hash
	relay   bool   // key is the relay key rather than the hash key
	last    time.Time
	retryAt time.Time
	backoff time.Duration // wait after the next failure
	queued  bool          // waiting for a worker or being announced
}

// announcer announces the keys of local hashes (and the relay keys of
// hashes our peers look for elsewhere), again before they expire, and stops
// announcing those that are gone. BEP 5 has no withdrawal: the values expire
// on the other nodes. A scan decides what is due and queues it without
// waiting; a fixed pool of workers walks the DHT. What does not fit in the
// queue waits for a later scan, so neither goroutines nor the queue grow
// with the number of hashes.
type announcer struct {
	f     *Federation
	queue chan *announcement

	mu     sync.Mutex
	anns   map[[20]byte]*announcement
	lonely bool // the routing table was empty at the last scan
	full   bool // maxAnnounced was reached (logged once)
}

func newAnnouncer(f *Federation) *announcer {
	return &announcer{
		f:      f,
		queue:  make(chan *announcement, announceQueue),
		anns:   make(map[[20]byte]*announcement),
		lonely: true,
	}
}

// len counts the keys tracked.
func (an *announcer) len() int {
	an.mu.Lock()
	defer an.mu.Unlock()
	return len(an.anns)
}

// run scans until ctx ends; its workers run beside it under the
// Federation's ownership.
func (an *announcer) run(ctx context.Context) {
	f := an.f
	for range announceWorkers {
		f.spawn(an.work)
	}
	tick := time.NewTicker(f.cfg.ScanInterval)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		scanned := time.Now()
		next := an.scan(scanned)
		if !retry.Stop() {
			select {
			case <-retry.C:
			default:
			}
		}
		if !next.IsZero() {
			retry.Reset(max(time.Until(next), minScanGap))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-retry.C:
		case <-f.scanNow:
			// Early scans (new demand, a drained queue) come at most every
			// minScanGap: a scan costs time in the number of hashes.
			if wait := minScanGap - time.Since(scanned); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
	}
}

// scan brings the tracked keys in line with the wanted ones and queues
// those due. It returns when the earliest failed announce may be retried
// (zero for none).
func (an *announcer) scan(now time.Time) time.Time {
	f := an.f
	want := f.wantedKeys()
	self, hasSelf := f.selfAddr()
	lonely := f.node.NumNodes() == 0

	an.mu.Lock()
	defer an.mu.Unlock()
	// A node joining a lonely node makes every failed announcement worth
	// retrying now rather than after its backoff.
	if an.lonely && !lonely {
		for _, a := range an.anns {
			a.retryAt, a.backoff = time.Time{}, 0
		}
	}
	an.lonely = lonely
	for key, a := range an.anns {
		if _, ok := want[key]; !ok && !a.queued {
			f.log.Debug("stopped announcing", "hash", a.hash, "relay", a.relay)
			delete(an.anns, key)
			if hasSelf {
				an.forget(a, self)
			}
		}
	}
	queueFull := false
	var next time.Time
	for key, w := range want {
		a := an.anns[key]
		if a == nil {
			if len(an.anns) >= maxAnnounced {
				if !an.full {
					an.full = true
					f.log.Warn("too many hashes to announce in the DHT; the rest wait for room", "max", maxAnnounced)
				}
				continue
			}
			a = &announcement{key: key, hash: w.hash, relay: w.relay}
			an.anns[key] = a
		}
		if a.queued {
			continue
		}
		if now.Before(a.retryAt) {
			if next.IsZero() || a.retryAt.Before(next) {
				next = a.retryAt
			}
			continue
		}
		due := a.last.IsZero() || now.Sub(a.last) >= f.cfg.ReannounceInterval
		if !due || queueFull {
			continue
		}
		select {
		case an.queue <- a:
			a.queued = true
		default:
			// Workers drain the queue and ask for the next scan.
			queueFull = true
		}
	}
	return next
}

// work announces queued keys until ctx ends.
func (an *announcer) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-an.queue:
			an.announce(ctx, a)
			if len(an.queue) == 0 {
				an.f.HashesChanged()
			}
		}
	}
}

// announce walks the DHT to store our address under a's key and, for a
// file's hash, under the prototype's 40-byte key too.
func (an *announcer) announce(ctx context.Context, a *announcement) {
	f := an.f
	self, hasSelf := f.selfAddr()
	if hasSelf {
		// Our node answers get_peers for what we announce: the walk stores
		// us on other nodes only, and a mediator that knows only us would
		// otherwise find nobody.
		f.store.add(a.key, self, time.Now())
	}
	contacted, _, err := f.inWalkSlot(ctx, true, func(ctx context.Context) (int, error) {
		return f.traverse(ctx, f.node, a.key, f.cfg.PublicPort, func(netip.AddrPort) {})
	})
	protoContacted := 0
	if !a.relay && ctx.Err() == nil {
		pkey, _ := ProtoKey(a.hash)
		if hasSelf {
			f.proto.store.add(pkey, self, time.Now())
		}
		var perr error
		protoContacted, _, perr = f.inWalkSlot(ctx, true, func(ctx context.Context) (int, error) {
			return f.proto.announce(ctx, pkey, f.cfg.PublicPort)
		})
		if err == nil {
			err = perr
		}
	}
	an.mu.Lock()
	defer an.mu.Unlock()
	a.queued = false
	if ctx.Err() != nil {
		return
	}
	if contacted == 0 && protoContacted == 0 {
		if a.backoff == 0 {
			a.backoff = firstAnnounceRetry
		}
		wait := min(a.backoff, f.cfg.ReannounceInterval)
		a.retryAt = time.Now().Add(wait)
		a.backoff = min(2*a.backoff, maxAnnounceRetry)
		f.log.Debug("announce failed, will retry", "hash", a.hash, "relay", a.relay, "in", wait, "err", err)
		return
	}
	a.backoff = 0
	a.last = time.Now()
	f.log.Debug("announced", "hash", a.hash, "relay", a.relay, "nodes", contacted, "proto_nodes", protoContacted)
}

// forget drops our own values of a, once we stop announcing it.
func (an *announcer) forget(a *announcement, self netip.AddrPort) {
	an.f.store.remove(a.key, self)
	if !a.relay {
		pkey, _ := ProtoKey(a.hash)
		an.f.proto.store.remove(pkey, self)
	}
}

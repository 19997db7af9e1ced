package peering

import "github.com/p2pcdn/p2pcdn/internal/mediatorclient"

// OnRequest sets fn, called when a peer asks for a file that has no Link:
// it opens a channel naming the file on a shared connection. fn may Join
// the file to the Host and report true, and the channel goes to that Link;
// false refuses it. fn runs without the Host's lock and must not block for
// long (it holds up the connection's other channels). A seeder of many files
// uses it to keep a torrent open only for files peers ask for.
func (h *Host) OnRequest(fn func(hash string) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onRequest = fn
}

// requestLocked asks onRequest for a Link for hash. It releases h.mu while
// fn runs: the caller must check again what it found before.
func (h *Host) requestLocked(hash string) *Link {
	fn := h.onRequest
	if fn == nil || h.closed {
		return nil
	}
	h.mu.Unlock()
	ok := fn(hash)
	h.mu.Lock()
	if !ok {
		return nil
	}
	return h.links[hash]
}

// Deliver hands the link an event of its hash that reached the client
// before the link subscribed to it: the offer that made its owner join (a
// seeder of many files joins a file only when a peer asks for it, and that
// first offer arrives on the client's Events).
func (l *Link) Deliver(ev mediatorclient.Event) {
	switch ev := ev.(type) {
	case mediatorclient.Peers:
		l.offerPeers(ev.IDs)
	case mediatorclient.Signal:
		l.h.onSignal(l, ev.From, ev.Data)
	}
}

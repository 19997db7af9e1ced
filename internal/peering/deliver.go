package peering

import "github.com/p2pcdn/p2pcdn/internal/mediatorclient"

// Deliver hands the link an event of its hash that reached the client before
// the link subscribed: the request that made its owner join. A seeder of
// many files joins a file's torrent only when a peer asks for it, and that
// first offer arrives on the client's Events.
func (l *Link) Deliver(ev mediatorclient.Event) {
	switch ev := ev.(type) {
	case mediatorclient.Peers:
		l.offerPeers(ev.IDs)
	case mediatorclient.Signal:
		l.onSignal(ev.From, ev.Data)
	}
}

package mediator

// Federation is the mediator's view of other mediators. The server works
// without one (Server.Federation nil): it then knows only its local peers.
// Implementations (DHT lookups, replication links) live elsewhere; the server
// calls them from connection handlers, so both methods must return quickly
// and be safe for concurrent use.
type Federation interface {
	// RemotePeers returns up to max ids of peers of other mediators known to
	// seed hash right now. It must not block on the network: it may start a
	// lookup whose results show up in later calls, since peers repeat
	// get_peers until they find someone.
	RemotePeers(hash string, max int) []string

	// RelaySignal forwards a signal from local peer from to peer to, which is
	// not connected here. It reports whether it knew where to send it.
	RelaySignal(hash, from, to, data string) bool
}

package federation

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Kinds of 40-byte queries, as counted in p2pcdn_dht_prototype_queries_total.
// The query name comes from the network, so it is never a label itself.
const (
	protoGetPeers     = "get_peers"
	protoAnnounce     = "announce_peer"
	protoRefused      = "announce_refused" // bad token or port
	protoOtherQueries = "other"
)

// protoCounters counts the 40-byte layer's queries; its children are
// resolved once, as they count per packet.
type protoCounters struct {
	vec                                *prometheus.CounterVec
	getPeers, announce, refused, other prometheus.Counter
}

func newProtoCounters() protoCounters {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "p2pcdn_dht_prototype_queries_total",
		Help: "DHT queries with the prototype's 40-byte keys handled by this node, by kind.",
	}, []string{"kind"})
	return protoCounters{
		vec:      vec,
		getPeers: vec.WithLabelValues(protoGetPeers),
		announce: vec.WithLabelValues(protoAnnounce),
		refused:  vec.WithLabelValues(protoRefused),
		other:    vec.WithLabelValues(protoOtherQueries),
	}
}

// register adds the federation's metrics to reg.
func (f *Federation) register(reg prometheus.Registerer) error {
	gauge := func(name, help string, v func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, v)
	}
	for _, c := range []prometheus.Collector{
		f.proto.counters.vec,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "p2pcdn_dht_dropped_packets_total",
			Help: "UDP packets on the DHT socket dropped undecoded: those that would crash the DHT library and malformed 40-byte queries.",
		}, func() float64 { return float64(f.guard.dropped.Load() + f.proto.dropped.Load()) }),
		gauge("p2pcdn_dht_announced_keys",
			"DHT keys this mediator announces: its hashes (each under the 20-byte and the prototype's 40-byte key) and the relay keys of hashes its peers look for.",
			func() float64 { return float64(f.announcing()) }),
		gauge("p2pcdn_dht_stored_keys", "Keys (20-byte) under which this DHT node stores other mediators' announcements.",
			func() float64 { return float64(f.store.len()) }),
		gauge("p2pcdn_dht_prototype_stored_keys", "Keys (the prototype's 40-byte form) under which this DHT node stores other mediators' announcements.",
			func() float64 { return float64(f.proto.store.len()) }),
		gauge("p2pcdn_federation_links", "REPLICATION connections this mediator holds open to other mediators.",
			func() float64 { f.mu.Lock(); defer f.mu.Unlock(); return float64(len(f.links)) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("federation: registering metrics: %w", err)
		}
	}
	return nil
}

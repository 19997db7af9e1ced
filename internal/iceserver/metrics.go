package iceserver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a TURN request or relayed packet is refused, as counted in
// p2pcdn_turn_refusals_total.
const (
	refuseBadUsername   = "bad_username"   // not <expiry>:<peer id>
	refuseExpired       = "expired"        // credentials past their expiry
	refuseBadPassword   = "bad_password"   // message integrity did not match
	refuseQuotaTotal    = "quota_total"    // MaxAllocations reached
	refuseQuotaIP       = "quota_ip"       // MaxAllocationsPerIP reached
	refuseQuotaPeer     = "quota_peer"     // MaxAllocationsPerPeer reached
	refuseRequestedPort = "requested_port" // EVEN-PORT / RESERVATION-TOKEN
	refuseTCPRelay      = "tcp_relay"      // RFC 6062 TCP allocations
	refuseFamily        = "address_family" // relay family we do not have
	refuseTURNOff       = "turn_disabled"  // a TURN request while only STUN is on
	refuseLoopback      = "peer_loopback"
	refuseLinkLocal     = "peer_link_local"
	refuseUnspecified   = "peer_unspecified"
	refuseMulticast     = "peer_multicast"
	refusePrivate       = "peer_private"
	refuseOwnPort       = "peer_own_port"  // a relayed packet toward this server's own ports
	refuseStreamConns   = "too_many_conns" // a TURN connection over TCP/TLS beyond the caps
)

var refusalReasons = []string{
	refuseBadUsername, refuseExpired, refuseBadPassword, refuseQuotaTotal, refuseQuotaIP, refuseQuotaPeer,
	refuseRequestedPort, refuseTCPRelay, refuseFamily, refuseTURNOff, refuseLoopback, refuseLinkLocal,
	refuseUnspecified, refuseMulticast, refusePrivate, refuseOwnPort, refuseStreamConns,
}

type metrics struct {
	bindings         prometheus.Counter
	bindingsDropped  prometheus.Counter
	malformed        prometheus.Counter
	requestErrors    prometheus.Counter
	allocationsTotal prometheus.Counter
	refusals         *prometheus.CounterVec
	relayed          *prometheus.CounterVec // bytes by direction
	droppedBytes     *prometheus.CounterVec // relayed bytes dropped, by reason

	// Children of the vectors above, resolved once: they count per packet.
	toPeer, fromPeer, droppedRate, droppedOwn prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		bindings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "p2pcdn_stun_bindings_total",
			Help: "STUN binding requests answered over UDP.",
		}),
		bindingsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "p2pcdn_stun_bindings_dropped_total",
			Help: "STUN binding requests left unanswered because they came faster than the binding rate limit.",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "p2pcdn_stun_malformed_packets_total",
			Help: "Datagrams on the STUN/TURN socket that were neither valid STUN nor TURN ChannelData.",
		}),
		requestErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "p2pcdn_turn_request_errors_total",
			Help: "STUN/TURN messages the TURN server could not handle (malformed, unknown method, refused).",
		}),
		allocationsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "p2pcdn_turn_allocations_total",
			Help: "TURN allocations created.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "p2pcdn_turn_refusals_total",
			Help: "TURN requests and relayed packets refused, by reason.",
		}, []string{"reason"}),
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "p2pcdn_turn_relayed_bytes_total",
			Help: "Bytes through TURN relay sockets: to_peer sent for clients, from_peer received for them.",
		}, []string{"direction"}),
		droppedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "p2pcdn_turn_dropped_bytes_total",
			Help: "Relayed bytes dropped: rate_limit (over the relay bandwidth cap) or own_port.",
		}, []string{"reason"}),
	}
	for _, r := range refusalReasons {
		m.refusals.WithLabelValues(r)
	}
	m.toPeer = m.relayed.WithLabelValues("to_peer")
	m.fromPeer = m.relayed.WithLabelValues("from_peer")
	m.droppedRate = m.droppedBytes.WithLabelValues("rate_limit")
	m.droppedOwn = m.droppedBytes.WithLabelValues("own_port")
	return m
}

// register adds the counters, and a gauge of current allocations read from
// allocations, to reg.
func (m *metrics) register(reg prometheus.Registerer, allocations func() float64) error {
	cs := []prometheus.Collector{
		m.bindings, m.bindingsDropped, m.malformed, m.requestErrors, m.allocationsTotal, m.refusals, m.relayed, m.droppedBytes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "p2pcdn_turn_allocations",
			Help: "TURN allocations open now.",
		}, allocations),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("iceserver: registering metrics: %w", err)
		}
	}
	return nil
}

func (m *metrics) refuse(reason string) { m.refusals.WithLabelValues(reason).Inc() }

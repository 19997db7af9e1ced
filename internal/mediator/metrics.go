package mediator

import (
	"net/http"
	rtmetrics "runtime/metrics"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
)

// eventNames are the events counted by name; anything else counts as "other"
// so hostile clients cannot grow the label set.
var eventNames = [...]string{
	mediation.EventHandshake, mediation.EventEstablished, mediation.EventGetPeers, mediation.EventPeers,
	mediation.EventSignal, mediation.EventAnnounce, mediation.EventFinish,
	mediation.EventAnnounceMany, mediation.EventFinishMany, mediation.EventGetPeersMany, "other",
}

// Reasons an event is dropped.
const (
	dropMalformed       = "malformed"
	dropRateLimited     = "rate_limited"
	dropBeforeHandshake = "before_handshake"
	dropUnexpected      = "unexpected" // valid event, wrong direction or connection type
	dropTooManyHashes   = "too_many_hashes"
	dropUnknownEvent    = "unknown_event"
	dropSpoofedSender   = "spoofed_sender" // a relayed signal claiming an id this link may not speak for
)

var dropReasons = [...]string{
	dropMalformed, dropRateLimited, dropBeforeHandshake, dropUnexpected, dropTooManyHashes, dropUnknownEvent,
	dropSpoofedSender,
}

// Reasons the mediator closes a connection itself.
const (
	closeMisbehaving      = "misbehaving"
	closeIDTaken          = "id_taken"
	closeHandshakeTimeout = "handshake_timeout"
)

var closeReasons = [...]string{closeMisbehaving, closeIDTaken, closeHandshakeTimeout}

// Reasons a signal for a local peer is not delivered although the peer is
// here: the limits that protect a receiver from floods.
const (
	signalDropRate      = "rate"       // the receiver's budget of signals per second
	signalDropSize      = "size"       // larger than the mediator's signal size limit
	signalDropQueueFull = "queue_full" // the receiver's outbound queue is too full for more
)

var signalDropReasons = [...]string{signalDropRate, signalDropSize, signalDropQueueFull}

// Limits refusing something to a client address (per IP, IPv6 per /64).
const (
	limitConnections = "connections" // TCP connections
	limitSessions    = "sessions"    // Engine.IO sessions
	limitHashes      = "hashes"      // announced hashes
)

var limitNames = [...]string{limitConnections, limitSessions, limitHashes}

// metrics are the mediator's Prometheus collectors. Labelled counters are
// resolved once here, so the hot path only adds atomically.
type metrics struct {
	connections       prometheus.Gauge // open Socket.IO connections
	connectionsTotal  prometheus.Counter
	replications      prometheus.Gauge // open REPLICATION connections
	events            [len(eventNames)]prometheus.Counter
	drops             [len(dropReasons)]prometheus.Counter
	closes            [len(closeReasons)]prometheus.Counter
	signalDrops       [len(signalDropReasons)]prometheus.Counter
	limited           [len(limitNames)]prometheus.Counter
	signalsRouted     prometheus.Counter
	signalsRelayed    prometheus.Counter // handed to the federation
	signalsUnroutable prometheus.Counter
	peersAnswers      prometheus.Counter
	emitErrors        prometheus.Counter
	hashes            [3]prometheus.Counter  // hashes named by get_peers, announce, finish and their batch forms
	transportErrors   *prometheus.CounterVec // by the transport's error kind, a small fixed set
	getPeers          prometheus.Histogram
}

// newMetrics creates the collectors and registers them, with gauges read
// from s's registry at scrape time, into reg.
func newMetrics(reg prometheus.Registerer, s *Server) *metrics {
	m := &metrics{}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	labelled := func(dst []prometheus.Counter, name, help, label string, values []string) {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
		reg.MustRegister(v)
		for i, l := range values {
			dst[i] = v.WithLabelValues(l)
		}
	}
	m.connections = gauge("p2pcdn_mediator_connections", "Open Socket.IO connections.")
	m.connectionsTotal = counter("p2pcdn_mediator_connections_total", "Socket.IO connections accepted.")
	m.replications = gauge("p2pcdn_mediator_replication_connections", "Open REPLICATION connections from other mediators.")
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "p2pcdn_mediator_peers", Help: "Peers that completed a MEDIATION handshake.",
	}, func() float64 { p, _, _ := s.reg.stats(); return float64(p) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "p2pcdn_mediator_hashes", Help: "Hashes with at least one local seeder.",
	}, func() float64 { _, h, _ := s.reg.stats(); return float64(h) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "p2pcdn_mediator_seeders", Help: "Announced (peer, hash) pairs.",
	}, func() float64 { _, _, n := s.reg.stats(); return float64(n) }))
	labelled(m.events[:], "p2pcdn_mediator_events_received_total", "Events received, by name.", "event", eventNames[:])
	labelled(m.drops[:], "p2pcdn_mediator_events_dropped_total", "Events dropped, by reason.", "reason", dropReasons[:])
	labelled(m.closes[:], "p2pcdn_mediator_connections_closed_total", "Connections the mediator closed, by reason.", "reason", closeReasons[:])
	labelled(m.signalDrops[:], "p2pcdn_mediator_signals_dropped_total",
		"Signals for a connected peer not delivered to protect it from floods, by limit.", "limit", signalDropReasons[:])
	labelled(m.limited[:], "p2pcdn_mediator_limited_total",
		"Connections, sessions and announces refused by a per-client-address limit, by limit.", "limit", limitNames[:])
	labelled(m.hashes[:], "p2pcdn_mediator_hashes_received_total",
		"Hashes named by get_peers, announce and finish events, their batch forms included (counted under the single form).",
		"event", []string{mediation.EventGetPeers, mediation.EventAnnounce, mediation.EventFinish})
	m.peersAnswers = counter("p2pcdn_mediator_peers_answers_total", "peers events sent.")
	m.signalsRouted = counter("p2pcdn_mediator_signals_routed_total", "Signals delivered to a local peer.")
	m.signalsRelayed = counter("p2pcdn_mediator_signals_relayed_total", "Signals handed to another mediator.")
	m.signalsUnroutable = counter("p2pcdn_mediator_signals_unroutable_total", "Signals for peers nobody knows.")
	m.emitErrors = counter("p2pcdn_mediator_emit_errors_total", "Events that could not be queued to a connection.")
	m.transportErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "p2pcdn_mediator_transport_errors_total", Help: "Engine.IO/Socket.IO errors, by kind.",
	}, []string{"kind"})
	reg.MustRegister(m.transportErrors)
	m.getPeers = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "p2pcdn_mediator_get_peers_seconds",
		Help: "Time from a peer's get_peers (or get_peers_many) to its answers being queued, federation lookups included.",
		// 10 µs to ~1.3 s: local answers take microseconds, a loaded
		// mediator's tail milliseconds.
		Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10),
	})
	reg.MustRegister(m.getPeers)
	reg.MustRegister(runtimeCollector{})
	return m
}

func (m *metrics) transportError(kind string) { m.transportErrors.WithLabelValues(kind).Inc() }

func (m *metrics) event(name string) {
	for i, n := range eventNames[:len(eventNames)-1] {
		if n == name {
			m.events[i].Inc()
			return
		}
	}
	m.events[len(eventNames)-1].Inc()
}

// named counts the hashes an accepted event names.
func (m *metrics) named(msg mediation.Message, n int) {
	switch msg.(type) {
	case mediation.GetPeers, mediation.GetPeersMany:
		m.hashes[0].Add(float64(n))
	case mediation.Announce, mediation.AnnounceMany:
		m.hashes[1].Add(float64(n))
	case mediation.Finish, mediation.FinishMany:
		m.hashes[2].Add(float64(n))
	}
}

func (m *metrics) drop(reason string) {
	for i, r := range dropReasons {
		if r == reason {
			m.drops[i].Inc()
			return
		}
	}
}

func (m *metrics) closed(reason string) {
	for i, r := range closeReasons {
		if r == reason {
			m.closes[i].Inc()
			return
		}
	}
}

func (m *metrics) signalDropped(reason string) {
	for i, r := range signalDropReasons {
		if r == reason {
			m.signalDrops[i].Inc()
			return
		}
	}
}

func (m *metrics) limit(what string) {
	for i, l := range limitNames {
		if l == what {
			m.limited[i].Inc()
			return
		}
	}
}

func (m *metrics) observeGetPeers(start time.Time) { m.getPeers.Observe(time.Since(start).Seconds()) }

// newMetricsRegistry is the registry a Server creates when it is given none: the
// Go runtime and process collectors come with it.
func newMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// serveMetrics serves the registry in the Prometheus exposition format.
func (s *Server) serveMetrics(h http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	}
}

func metricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// runtimeGauges are the Go runtime figures an operator sizing a mediator
// needs and bench/mediator reads, under the names /metrics has always had
// (the Go collector's go_goroutines covers goroutines).
var runtimeGauges = [...]struct{ metric, name, help string }{
	{"/gc/heap/live:bytes", "go_gc_heap_live_bytes", "Heap memory occupied by live objects after the last GC."},
	{"/memory/classes/heap/stacks:bytes", "go_memory_stacks_bytes", "Memory used by goroutine stacks."},
	{"/memory/classes/total:bytes", "go_memory_total_bytes", "All memory mapped by the Go runtime."},
}

var runtimeDescs = func() (d [len(runtimeGauges)]*prometheus.Desc) {
	for i, g := range runtimeGauges {
		d[i] = prometheus.NewDesc(g.name, g.help, nil, nil)
	}
	return d
}()

type runtimeCollector struct{}

func (runtimeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range runtimeDescs {
		ch <- d
	}
}

func (runtimeCollector) Collect(ch chan<- prometheus.Metric) {
	samples := make([]rtmetrics.Sample, len(runtimeGauges))
	for i, g := range runtimeGauges {
		samples[i].Name = g.metric
	}
	rtmetrics.Read(samples)
	for i := range runtimeGauges {
		if samples[i].Value.Kind() != rtmetrics.KindUint64 {
			continue // not supported by this Go version
		}
		ch <- prometheus.MustNewConstMetric(runtimeDescs[i], prometheus.GaugeValue, float64(samples[i].Value.Uint64()))
	}
}

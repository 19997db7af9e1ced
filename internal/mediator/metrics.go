package mediator

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	rtmetrics "runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/p2pcdn/p2pcdn/internal/mediation"
)

// eventNames are the events counted by name; anything else counts as "other"
// so hostile clients cannot grow the label set.
var eventNames = [...]string{
	mediation.EventHandshake, mediation.EventEstablished, mediation.EventGetPeers, mediation.EventPeers,
	mediation.EventSignal, mediation.EventAnnounce, mediation.EventFinish, "other",
}

// Reasons an event is dropped.
const (
	dropMalformed       = "malformed"
	dropRateLimited     = "rate_limited"
	dropBeforeHandshake = "before_handshake"
	dropUnexpected      = "unexpected" // valid event, wrong direction or connection type
	dropTooManyHashes   = "too_many_hashes"
	dropUnknownEvent    = "unknown_event"
)

var dropReasons = [...]string{
	dropMalformed, dropRateLimited, dropBeforeHandshake, dropUnexpected, dropTooManyHashes, dropUnknownEvent,
}

// Reasons the mediator closes a connection itself.
const (
	closeMisbehaving      = "misbehaving"
	closeIDTaken          = "id_taken"
	closeHandshakeTimeout = "handshake_timeout"
)

var closeReasons = [...]string{closeMisbehaving, closeIDTaken, closeHandshakeTimeout}

// metrics are counters kept with atomics so the hot path never locks for
// them; gauges about the registry are read from it at scrape time.
type metrics struct {
	connections       atomic.Int64 // open Socket.IO connections
	connectionsTotal  atomic.Int64
	replications      atomic.Int64 // open REPLICATION connections
	events            [len(eventNames)]atomic.Int64
	drops             [len(dropReasons)]atomic.Int64
	closes            [len(closeReasons)]atomic.Int64
	signalsRouted     atomic.Int64
	signalsRelayed    atomic.Int64 // handed to the federation
	signalsUnroutable atomic.Int64
	peersAnswers      atomic.Int64
	emitErrors        atomic.Int64

	transportMu     sync.Mutex
	transportErrors map[string]int64 // by the transport's error kind, a small fixed set
}

func (m *metrics) transportError(kind string) {
	m.transportMu.Lock()
	defer m.transportMu.Unlock()
	if m.transportErrors == nil {
		m.transportErrors = make(map[string]int64)
	}
	m.transportErrors[kind]++
}

func (m *metrics) event(name string) {
	for i, n := range eventNames[:len(eventNames)-1] {
		if n == name {
			m.events[i].Add(1)
			return
		}
	}
	m.events[len(eventNames)-1].Add(1)
}

func (m *metrics) drop(reason string) {
	for i, r := range dropReasons {
		if r == reason {
			m.drops[i].Add(1)
			return
		}
	}
}

func (m *metrics) closed(reason string) {
	for i, r := range closeReasons {
		if r == reason {
			m.closes[i].Add(1)
			return
		}
	}
}

// serveMetrics writes the Prometheus text exposition format (version 0.0.4).
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m := &s.metrics
	peers, hashes, seeders := s.reg.stats()
	b := bufio.NewWriter(w)
	gauge := func(name, help string, v int64) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	counter := func(name, help string, v int64) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge("p2pcdn_mediator_connections", "Open Socket.IO connections.", m.connections.Load())
	counter("p2pcdn_mediator_connections_total", "Socket.IO connections accepted.", m.connectionsTotal.Load())
	gauge("p2pcdn_mediator_peers", "Peers that completed a MEDIATION handshake.", int64(peers))
	gauge("p2pcdn_mediator_replication_connections", "Open REPLICATION connections from other mediators.", m.replications.Load())
	gauge("p2pcdn_mediator_hashes", "Hashes with at least one local seeder.", int64(hashes))
	gauge("p2pcdn_mediator_seeders", "Announced (peer, hash) pairs.", int64(seeders))

	fmt.Fprintf(b, "# HELP p2pcdn_mediator_events_received_total Events received, by name.\n# TYPE p2pcdn_mediator_events_received_total counter\n")
	for i, n := range eventNames {
		fmt.Fprintf(b, "p2pcdn_mediator_events_received_total{event=%q} %d\n", n, m.events[i].Load())
	}
	fmt.Fprintf(b, "# HELP p2pcdn_mediator_events_dropped_total Events dropped, by reason.\n# TYPE p2pcdn_mediator_events_dropped_total counter\n")
	for i, r := range dropReasons {
		fmt.Fprintf(b, "p2pcdn_mediator_events_dropped_total{reason=%q} %d\n", r, m.drops[i].Load())
	}
	fmt.Fprintf(b, "# HELP p2pcdn_mediator_connections_closed_total Connections the mediator closed, by reason.\n# TYPE p2pcdn_mediator_connections_closed_total counter\n")
	for i, r := range closeReasons {
		fmt.Fprintf(b, "p2pcdn_mediator_connections_closed_total{reason=%q} %d\n", r, m.closes[i].Load())
	}
	counter("p2pcdn_mediator_peers_answers_total", "peers events sent.", m.peersAnswers.Load())
	counter("p2pcdn_mediator_signals_routed_total", "Signals delivered to a local peer.", m.signalsRouted.Load())
	counter("p2pcdn_mediator_signals_relayed_total", "Signals handed to another mediator.", m.signalsRelayed.Load())
	counter("p2pcdn_mediator_signals_unroutable_total", "Signals for peers nobody knows.", m.signalsUnroutable.Load())
	counter("p2pcdn_mediator_emit_errors_total", "Events that could not be queued to a connection.", m.emitErrors.Load())
	fmt.Fprintf(b, "# HELP p2pcdn_mediator_transport_errors_total Engine.IO/Socket.IO errors, by kind.\n# TYPE p2pcdn_mediator_transport_errors_total counter\n")
	m.transportMu.Lock()
	kinds := make([]string, 0, len(m.transportErrors))
	for k := range m.transportErrors {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(b, "p2pcdn_mediator_transport_errors_total{kind=%q} %d\n", k, m.transportErrors[k])
	}
	m.transportMu.Unlock()
	writeRuntime(b)
	b.Flush()
}

// runtimeGauges are the Go runtime figures an operator sizing a mediator
// needs: live heap after the last GC, goroutine stacks, goroutines.
var runtimeGauges = [...]struct{ metric, name, help string }{
	{"/gc/heap/live:bytes", "go_gc_heap_live_bytes", "Heap memory occupied by live objects after the last GC."},
	{"/memory/classes/heap/stacks:bytes", "go_memory_stacks_bytes", "Memory used by goroutine stacks."},
	{"/memory/classes/total:bytes", "go_memory_total_bytes", "All memory mapped by the Go runtime."},
	{"/sched/goroutines:goroutines", "go_goroutines", "Live goroutines."},
}

func writeRuntime(w io.Writer) {
	samples := make([]rtmetrics.Sample, len(runtimeGauges))
	for i, g := range runtimeGauges {
		samples[i].Name = g.metric
	}
	rtmetrics.Read(samples)
	for i, g := range runtimeGauges {
		if samples[i].Value.Kind() != rtmetrics.KindUint64 {
			continue // not supported by this Go version
		}
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", g.name, g.help, g.name, g.name, samples[i].Value.Uint64())
	}
}

// Package metrics holds mcpgate's Prometheus metrics, in a registry of its
// own rather than the process-wide default.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpgate/mcpgate/passthrough"
)

// Metrics are the gateway's counters and histograms.
type Metrics struct {
	registry *prometheus.Registry

	requests        *prometheus.CounterVec
	upstreamLatency *prometheus.HistogramVec
	decisions       *prometheus.CounterVec

	upstreamSessions *prometheus.CounterVec
}

// New returns a fresh set of metrics, with the Go runtime and process
// collectors.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgate_requests_total",
			Help: "JSON-RPC requests handled, by method, upstream (empty when answered by mcpgate itself) and outcome (ok or error).",
		}, []string{"method", "upstream", "outcome"}),
		upstreamLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpgate_upstream_request_duration_seconds",
			Help:    "Time from sending a request to an upstream to having its answer, by upstream and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"upstream", "method"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgate_passthrough_decisions_total",
			Help: "Header passthrough decisions, by upstream, header (as configured), action (forwarded or skipped) and reason code.",
		}, []string{"upstream", "header", "action", "reason"}),
	}
	// Discovery sessions, by upstream id (ids are the registered upstreams',
	// bounded by the admin API, never a client's input).
	m.upstreamSessions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpgate_upstream_sessions_opened_total",
		Help: "Upstream sessions mcpgate opened for discovery (catalogue listing), by upstream id.",
	}, []string{"upstream_id"})
	m.registry.MustRegister(m.upstreamSessions)
	m.registry.MustRegister(m.requests, m.upstreamLatency, m.decisions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Request counts one JSON-RPC request.
func (m *Metrics) Request(method, upstream string, ok bool) {
	outcome := "ok"
	if !ok {
		outcome = "error"
	}
	m.requests.WithLabelValues(method, upstream, outcome).Inc()
}

// UpstreamLatency records how long an upstream took to answer.
func (m *Metrics) UpstreamLatency(upstream, method string, d time.Duration) {
	m.upstreamLatency.WithLabelValues(upstream, method).Observe(d.Seconds())
}

// Decisions counts a computation's passthrough decisions.
func (m *Metrics) Decisions(upstream string, ds []passthrough.Decision) {
	for _, d := range ds {
		m.decisions.WithLabelValues(upstream, d.Header, d.Action.String(), d.Reason.String()).Inc()
	}
}

// UpstreamSessionOpened counts one discovery session opened to upstream id.
func (m *Metrics) UpstreamSessionOpened(id string) {
	m.upstreamSessions.WithLabelValues(id).Inc()
}

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

// Request counts one JSON-RPC request; its method is labelled as
// MethodLabel says.
func (m *Metrics) Request(method, upstream string, ok bool) {
	outcome := "ok"
	if !ok {
		outcome = "error"
	}
	m.requests.WithLabelValues(MethodLabel(method), upstream, outcome).Inc()
}

// UpstreamLatency records how long an upstream took to answer; its method
// is labelled as MethodLabel says.
func (m *Metrics) UpstreamLatency(upstream, method string, d time.Duration) {
	m.upstreamLatency.WithLabelValues(upstream, MethodLabel(method)).Observe(d.Seconds())
}

// OtherMethod is the method label of every method MCP does not define.
const OtherMethod = "other"

// MethodLabel is the method label of a metric: the method when MCP defines
// it (KnownMethod), else OtherMethod. The method comes from what clients
// send and /metrics needs no authentication: a series per made-up method
// would let any client grow mcpgate's memory and every scrape without
// bound.
func MethodLabel(method string) string {
	if KnownMethod(method) {
		return method
	}
	return OtherMethod
}

// KnownMethod reports whether an MCP revision mcpgate speaks (2024-11-05 to
// 2025-11-25) defines method, as a request or a notification. It is the one
// list of MCP's method names in mcpgate; the protocol layer is where it
// belongs once there is one.
func KnownMethod(method string) bool {
	switch method {
	case "initialize", "ping",
		"tools/list", "tools/call",
		"resources/list", "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
		"prompts/list", "prompts/get",
		"completion/complete", "logging/setLevel",
		"sampling/createMessage", "roots/list", "elicitation/create",
		"tasks/get", "tasks/result", "tasks/list", "tasks/cancel",
		"notifications/initialized", "notifications/cancelled", "notifications/progress", "notifications/message",
		"notifications/tools/list_changed", "notifications/resources/list_changed", "notifications/prompts/list_changed",
		"notifications/resources/updated", "notifications/roots/list_changed",
		"notifications/elicitation/complete", "notifications/tasks/status":
		return true
	}
	return false
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

// Package metrics holds MCR's Prometheus collectors and the HTTP middleware
// that counts requests by route and status. distribution's own collectors
// register on the same default registry, so one /metrics shows both.
//
//	srv.Handler = exchange.Begin(metrics.Instrument(mux))
//	metrics.PolicyDenials.WithLabelValues("registry:push").Inc()
//	go http.ListenAndServe(cfg.Server.MetricsAddr, metrics.Handler())
package metrics

import (
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"git.wntrmute.dev/kyle/mcr/edge/exchange"
)

var (
	// Requests counts HTTP requests by route, method and status.
	Requests = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mcr", Name: "http_requests_total", Help: "HTTP requests by route, method and status.",
	}, []string{"route", "method", "status"})
	// TokensIssued counts registry tokens issued at /v2/token.
	TokensIssued = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "mcr", Name: "tokens_issued_total", Help: "Registry tokens issued.",
	})
	// AuthFailures counts failed sign-ins and refused credentials by reason.
	AuthFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mcr", Name: "auth_failures_total", Help: "Authentication failures by reason.",
	}, []string{"reason"})
	// PolicyDenials counts requests the policy refused, by action.
	PolicyDenials = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mcr", Name: "policy_denials_total", Help: "Requests denied by the policy engine, by action.",
	}, []string{"action"})
	// AuditCommit observes the latency of audit group commits.
	AuditCommit = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "mcr", Name: "audit_commit_seconds", Help: "Latency of audit/index group commits.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	// AuditWriteFailures counts events (changes, pulls, sign-ins, admin
	// actions) the audit log could not record; a change among them failed
	// its request.
	AuditWriteFailures = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "mcr", Name: "audit_write_failures_total", Help: "Audit events that could not be committed.",
	})
	// AuditBatch observes events per group commit.
	AuditBatch = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "mcr", Name: "audit_batch_events", Help: "Events per audit group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})
	// GCRuns counts garbage collection runs by result.
	GCRuns = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mcr", Name: "gc_runs_total", Help: "Garbage collection runs by result.",
	}, []string{"result"})
)

// RegisterQueueDepth exposes the audit queue depth through f.
func RegisterQueueDepth(f func() float64) {
	prometheus.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "mcr", Name: "audit_queue_depth", Help: "Events waiting to be committed to the audit log.",
	}, f))
}

// RegisterStorageFree exports mcr_storage_free_bytes, read at scrape time
// (f returns -1 when the free space cannot be read).
func RegisterStorageFree(f func() float64) {
	prometheus.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mcr_storage_free_bytes",
		Help: "Bytes available to the registry on the blob storage filesystem (-1 if unknown).",
	}, f))
}

// RegisterGate exports the GC write gate, read at scrape time:
// mcr_gc_gate_closed (1 while a collection holds or is closing the gate)
// and mcr_gc_gate_writes_in_flight (the tracked writes a collection waits
// for before it marks).
func RegisterGate(closed func() bool, inFlight func() int) {
	prometheus.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "mcr", Name: "gc_gate_closed", Help: "1 while a garbage collection holds (or is closing) the write gate.",
	}, func() float64 {
		if closed() {
			return 1
		}
		return 0
	}))
	prometheus.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "mcr", Name: "gc_gate_writes_in_flight", Help: "Manifest writes and deletes in progress that a garbage collection waits for.",
	}, func() float64 { return float64(inFlight()) }))
}

// Handler serves the default registry in the Prometheus text format.
func Handler() http.Handler { return promhttp.Handler() }

// DebugHandler serves /metrics and, when pprof is set, Go's profiles under
// /debug/pprof/. It is meant for the loopback metrics listener only.
func DebugHandler(pprofOn bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Instrument counts the requests next handles. It runs inside
// exchange.Begin, which has classified the request and observes the status,
// so every label comes from a fixed set: the route name, the normalised
// method, the status code. Nothing a client sends becomes a label.
func Instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		x := exchange.From(r.Context())
		if x == nil {
			return
		}
		status := x.Status()
		if status == 0 {
			status = http.StatusOK
		}
		method := exchange.MethodLabel(r.Method)
		if !x.Route.Known() { // a path no API serves: its method says nothing either
			method = "other"
		}
		Requests.WithLabelValues(x.Route.Name, method, exchange.StatusLabel(status)).Inc()
	})
}

// ObserveAuditFailure counts n events the audit log could not record.
func ObserveAuditFailure(n int) { AuditWriteFailures.Add(float64(n)) }

// ObserveCommit records one audit group commit.
func ObserveCommit(n int, took time.Duration) {
	AuditCommit.Observe(took.Seconds())
	AuditBatch.Observe(float64(n))
}

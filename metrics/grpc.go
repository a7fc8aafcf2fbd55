package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	// GRPCRequests counts gRPC calls by full method and status code. The
	// label set is bounded: interceptors only run for registered methods.
	GRPCRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mcr", Name: "grpc_requests_total", Help: "gRPC calls by method and status code.",
	}, []string{"method", "code"})
	// GRPCDuration observes gRPC call latency by full method.
	GRPCDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "mcr", Name: "grpc_request_duration_seconds", Help: "gRPC call latency by method.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"method"})
)

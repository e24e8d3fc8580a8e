package server

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"clusterchat"
)

// metrics are the server's Prometheus instruments, in their own registry so
// several servers can live in one test process.
type metrics struct {
	reg           *prometheus.Registry
	sessions      prometheus.Gauge
	conns         prometheus.Gauge
	logins        *prometheus.CounterVec
	accepted      prometheus.Counter
	duplicates    prometheus.Counter
	delivered     prometheus.Counter
	errors        *prometheus.CounterVec
	slowConsumers prometheus.Counter
	gapFills      prometheus.Counter
	publish       prometheus.Histogram
	pubDropped    prometheus.Counter
	storeAppend   prometheus.Histogram
	batchSize     prometheus.Histogram
	storeRetrying prometheus.Gauge
	storeHeld     prometheus.Gauge
	storeRetries  prometheus.Counter
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{
		reg:           reg,
		sessions:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_sessions", Help: "Logged-in sessions on this server."}),
		conns:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_connections", Help: "Open client connections."}),
		logins:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_logins_total", Help: "Login attempts by result."}, []string{"result"}),
		accepted:      prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_messages_accepted_total", Help: "Chat messages committed to the store."}),
		duplicates:    prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_messages_duplicate_total", Help: "Resent messages answered with the original acknowledgement."}),
		delivered:     prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_messages_delivered_total", Help: "Chat messages written to client sockets."}),
		errors:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_errors_total", Help: "Error replies by errno."}, []string{"errno"}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_slow_consumer_disconnects_total", Help: "Connections closed because their outbound queue was full."}),
		gapFills:      prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_gap_fills_total", Help: "Classic-session delivery gaps (messages the broker dropped) filled from the store."}),
		publish:       prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chat_broker_publish_seconds", Help: "Broker publish latency.", Buckets: prometheus.ExponentialBuckets(10e-6, 2.5, 12)}),
		pubDropped:    prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_broker_publish_dropped_total", Help: "Publications dropped because too many bytes waited for the broker (recipients catch up from the store)."}),
		storeAppend:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chat_store_append_seconds", Help: "Store append (one batch, one commit) latency.", Buckets: prometheus.ExponentialBuckets(10e-6, 2.5, 12)}),
		batchSize:     prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chat_store_append_batch_size", Help: "Messages per store commit.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		storeRetrying: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_store_retrying", Help: "1 while store appends fail transiently and are being retried (an outage), else 0."}),
		storeHeld:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_store_held_messages", Help: "Messages held behind a retried store append."}),
		storeRetries:  prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_store_append_retries_total", Help: "Store appends retried after a transient failure."}),
	}
	f(m.sessions)
	f(m.conns)
	f(m.logins)
	f(m.accepted)
	f(m.duplicates)
	f(m.delivered)
	f(m.errors)
	f(m.slowConsumers)
	f(m.gapFills)
	f(m.publish)
	f(m.pubDropped)
	f(m.storeAppend)
	f(m.batchSize)
	f(m.storeRetrying)
	f(m.storeHeld)
	f(m.storeRetries)
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func errLabel(err error) string {
	var e *clusterchat.Error
	if errors.As(err, &e) {
		return strconv.Itoa(e.Code)
	}
	return strconv.Itoa(clusterchat.EINTERNAL)
}

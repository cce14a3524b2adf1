// The metrics: made once per Telemetry, recorded only when their provider
// is on (Enabled), so that the no-op global costs no allocation.

package otelnats

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The metric names. Durations are in seconds, in DurationBuckets.
const (
	// MetricDuration is messaging.client.operation.duration: how long a
	// request, a gather or a hedged request took, from just before it was
	// sent to its end, by messaging.operation.name and error.type.
	MetricDuration = "messaging.client.operation.duration"
	// MetricProcessDuration is messaging.process.duration: how long a
	// responder's handler ran, by error.type.
	MetricProcessDuration = "messaging.process.duration"
	// MetricGatherReplies is reqreply.gather.replies: the replies per
	// gather (Result.Count).
	MetricGatherReplies = "reqreply.gather.replies"
	// MetricGatherStops is reqreply.gather.stops: gathers ended, by
	// reqreply.gather.stop_reason.
	MetricGatherStops = "reqreply.gather.stops"
	// MetricHedgesSent is reqreply.hedge.sent: hedge copies sent (not
	// first copies, not retries).
	MetricHedgesSent = "reqreply.hedge.sent"
	// MetricHedgesWon is reqreply.hedge.won: hedge copies whose reply the
	// caller got.
	MetricHedgesWon = "reqreply.hedge.won"
	// MetricHedgesWasted is reqreply.hedge.wasted: hedge copies sent whose
	// reply the caller did not get (the first copy, or none, answered).
	MetricHedgesWasted = "reqreply.hedge.wasted"
	// MetricRetries is reqreply.retries: retries sent (hedge.CopyRetry).
	MetricRetries = "reqreply.retries"
	// MetricAdmissionLeaves is reqreply.admission.leaves: a responder
	// leaving its queue group at its limit (hedge.Admission).
	MetricAdmissionLeaves = "reqreply.admission.leaves"
	// MetricNoResponders is reqreply.no_responders: requests, gathers and
	// hedged requests that ended with nats.ErrNoResponders.
	MetricNoResponders = "reqreply.no_responders"
)

// DurationBuckets are the duration histograms' bucket bounds, in seconds:
// 50 µs to 10 s, about three to a decade.
var DurationBuckets = []float64{
	50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
	1, 2.5, 5, 10,
}

// RepliesBuckets are reqreply.gather.replies' bucket bounds.
var RepliesBuckets = []float64{0, 1, 2, 3, 5, 10, 20, 50, 100, 1000}

// instruments are a Telemetry's metrics.
type instruments struct {
	mp              metric.MeterProvider // nil: the global
	duration        metric.Float64Histogram
	processDuration metric.Float64Histogram
	replies         metric.Int64Histogram
	stops           metric.Int64Counter
	hedgesSent      metric.Int64Counter
	hedgesWon       metric.Int64Counter
	hedgesWasted    metric.Int64Counter
	retries         metric.Int64Counter
	leaves          metric.Int64Counter
	noResponders    metric.Int64Counter
}

func (m *instruments) init(meter metric.Meter) error {
	var err error
	hist := func(name, desc string) metric.Float64Histogram {
		if err != nil {
			return nil
		}
		var h metric.Float64Histogram
		h, err = meter.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(DurationBuckets...))
		return h
	}
	counter := func(name, desc, unit string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = meter.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		return c
	}
	m.duration = hist(MetricDuration, "Duration of a request, gather or hedged request.")
	m.processDuration = hist(MetricProcessDuration, "Duration of a responder's handling of a request.")
	m.stops = counter(MetricGatherStops, "Gathers ended, by stop reason.", "{gather}")
	m.hedgesSent = counter(MetricHedgesSent, "Hedge copies sent.", "{copy}")
	m.hedgesWon = counter(MetricHedgesWon, "Hedge copies whose reply the caller got.", "{copy}")
	m.hedgesWasted = counter(MetricHedgesWasted, "Hedge copies whose reply the caller did not get.", "{copy}")
	m.retries = counter(MetricRetries, "Retries sent.", "{copy}")
	m.leaves = counter(MetricAdmissionLeaves, "Responders leaving their queue group at their limit.", "{leave}")
	m.noResponders = counter(MetricNoResponders, "Requests and gathers that met no responders.", "{request}")
	if err != nil {
		return err
	}
	m.replies, err = meter.Int64Histogram(MetricGatherReplies, metric.WithDescription("Replies per gather."),
		metric.WithUnit("{reply}"), metric.WithExplicitBucketBoundaries(RepliesBuckets...))
	return err
}

// on reports whether the client metrics record anything.
func (m *instruments) on(ctx context.Context) bool { return m.duration.Enabled(ctx) }

// operation records one client operation that started at start and ended
// with err: its duration, and a no-responders count.
func (m *instruments) operation(ctx context.Context, name string, start time.Time, err error) {
	attrs := []attribute.KeyValue{KeySystem.String("nats"), KeyOperationName.String(name)}
	if et := ErrorType(err); et != "" {
		attrs = append(attrs, KeyErrorType.String(et))
		if et == "no_responders" {
			m.noResponders.Add(ctx, 1, metric.WithAttributes(attrs[:2]...))
		}
	}
	m.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attrs...))
}

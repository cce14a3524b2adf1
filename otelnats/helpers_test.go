package otelnats_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"reqreply/otelnats"
)

// recorded is a Telemetry on an SDK tracer provider with an in-memory span
// recorder and a meter provider with a manual reader.
type recorded struct {
	tel    *otelnats.Telemetry
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
}

func newRecorded(t testing.TB) recorded {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	tel, err := otelnats.New(otelnats.WithTracerProvider(tp), otelnats.WithMeterProvider(mp),
		otelnats.WithPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})))
	require.NoError(t, err)
	return recorded{tel: tel, spans: spans, reader: reader}
}

// named returns the ended spans whose name is name.
func (r recorded) named(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range r.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// attr returns the value of key among s's attributes.
func attr(s sdktrace.ReadOnlySpan, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// metrics collects the reader's metrics by name.
func (r recorded) metrics(t testing.TB) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// sum is the total of a counter's data points whose attributes include
// match (all of them for none).
func sum(t testing.TB, a metricdata.Aggregation, match ...attribute.KeyValue) int64 {
	t.Helper()
	if a == nil {
		return 0
	}
	s, ok := a.(metricdata.Sum[int64])
	require.True(t, ok, "%T is not an int64 sum", a)
	var n int64
	for _, dp := range s.DataPoints {
		if hasAll(dp.Attributes, match) {
			n += dp.Value
		}
	}
	return n
}

// histCount is the count and sum of an int64 or float64 histogram's data
// points whose attributes include match.
func histCount(t testing.TB, a metricdata.Aggregation, match ...attribute.KeyValue) (count uint64, total float64) {
	t.Helper()
	switch h := a.(type) {
	case metricdata.Histogram[int64]:
		for _, dp := range h.DataPoints {
			if hasAll(dp.Attributes, match) {
				count += dp.Count
				total += float64(dp.Sum)
			}
		}
	case metricdata.Histogram[float64]:
		for _, dp := range h.DataPoints {
			if hasAll(dp.Attributes, match) {
				count += dp.Count
				total += dp.Sum
			}
		}
	case nil:
	default:
		t.Fatalf("%T is not a histogram", a)
	}
	return count, total
}

func hasAll(set attribute.Set, match []attribute.KeyValue) bool {
	for _, kv := range match {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// connect connects to url, closed when the test ends.
func connect(t testing.TB, url, name string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append(opts, nats.Name(name))...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

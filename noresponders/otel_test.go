package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"reqreply/internal/testserver"
)

var (
	tracedOnce  sync.Once
	tracedSpans *tracetest.SpanRecorder
	tracedTP    *sdktrace.TracerProvider
)

// With tracing on, against a server without header support, askTraced is
// answered as Ask is: the trace context is left out, not the request; the
// span is still made.
func TestTracedWithoutHeaderSupport(t *testing.T) {
	// The global provider is set once per process: otelnats.Default's
	// tracer stays with the first one set (-count=2 runs this twice).
	tracedOnce.Do(func() {
		tracedSpans = tracetest.NewSpanRecorder()
		tracedTP = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracedSpans))
	})
	spans := tracedSpans
	spans.Reset()
	otel.SetTracerProvider(tracedTP)
	// Tracing off again for the other tests, until the next run.
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })
	s := testserver.New(t, testserver.WithoutHeaders())
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	_, err = nc.Subscribe("greet.joe", func(m *nats.Msg) { _ = m.Respond([]byte("hello, joe")) })
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	reply, _, err := askTraced(context.Background(), nc, "greet.joe", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "hello, joe", reply)
	require.Len(t, spans.Ended(), 1)
	assert.Equal(t, "request greet.joe", spans.Ended()[0].Name())
}

package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"

	"reqreply/gather"
	"reqreply/internal/testserver"
	"reqreply/otelnats"
)

// The variables that turn TestJaeger on: Jaeger's query API and its OTLP
// receiver.
const (
	envJaegerQuery  = "JAEGER_QUERY"                // e.g. http://127.0.0.1:16686
	envOTLPEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT" // e.g. http://127.0.0.1:4318
)

// jaegerWait bounds the wait for Jaeger to show the trace: 30 s.
const jaegerWait = 30 * time.Second

// jaegerTrace is what TestJaeger reads of GET /api/traces/<traceID>.
type jaegerTrace struct {
	Data []struct {
		TraceID string
		Spans   []struct {
			TraceID       string
			SpanID        string
			OperationName string
			References    []struct{ RefType, TraceID, SpanID string }
		}
	}
}

// TestJaeger, against a real Jaeger (JAEGER_QUERY and
// OTEL_EXPORTER_OTLP_ENDPOINT set; skipped otherwise): a gather over 3
// responders, exported with OTLP as a program exports it
// (OTEL_TRACES_EXPORTER=otlp, Start, Shutdown), is found by its trace ID
// through Jaeger's query API with every span: the test's root, the
// gather's span under it, and the 3 responders' spans under the gather's.
func TestJaeger(t *testing.T) {
	query, endpoint := os.Getenv(envJaegerQuery), os.Getenv(envOTLPEndpoint)
	if query == "" || endpoint == "" {
		t.Skipf("set %s (e.g. http://127.0.0.1:16686) and %s (e.g. http://127.0.0.1:4318) to run against a Jaeger", envJaegerQuery, envOTLPEndpoint)
	}
	t.Setenv(EnvTraces, "otlp")
	t.Setenv(EnvMetrics, "")
	t.Setenv(EnvDisabled, "")
	ctx := context.Background()
	tel, err := Start(ctx, "reqreply-jaeger-test", "")
	require.NoError(t, err)
	defer func() { _ = tel.Shutdown(ctx) }()
	require.True(t, tel.Tracing())
	// Made after Start, from the providers it set: otelnats.Default keeps
	// the tracer of the providers of its first use, in this test process
	// possibly an earlier run's.
	ot, err := otelnats.New()
	require.NoError(t, err)

	// 3 responders, each on its own connection, traced by otelnats.
	s := testserver.New(t)
	const subject = "greet.all"
	var (
		responders []*nats.Conn
		closed     []chan struct{}
	)
	for i := 1; i <= 3; i++ {
		done := make(chan struct{})
		rc, err := nats.Connect(s.ClientURL(), nats.ClosedHandler(func(*nats.Conn) { close(done) }))
		require.NoError(t, err)
		defer rc.Close()
		responders, closed = append(responders, rc), append(closed, done)
		name := fmt.Sprintf("r%d", i)
		_, err = rc.Subscribe(subject, ot.Handler(func(m *nats.Msg) {
			reply := nats.NewMsg(m.Reply)
			reply.Header.Set(gather.ResponderHeader, name)
			reply.Data = []byte(name)
			_ = m.RespondMsg(reply)
		}))
		require.NoError(t, err)
		require.NoError(t, rc.Flush())
	}
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	defer nc.Close()

	ctx, root := otel.Tracer("reqreply/internal/telemetry").Start(ctx, "jaeger test")
	res, err := ot.Gather(ctx, gather.Inbox{Conn: nc}, subject, []byte("hi"), gather.Timeout(5*time.Second), gather.MaxReplies(3))
	root.End()
	require.NoError(t, err)
	require.Equal(t, 3, res.Count)
	traceID := root.SpanContext().TraceID().String()
	t.Logf("trace %s", traceID)

	// A responder's span ends when its handler returns: once its
	// connection has drained, it has. Then Shutdown sends every span.
	for i, rc := range responders {
		require.NoError(t, rc.Drain())
		select {
		case <-closed[i]:
		case <-time.After(5 * time.Second):
			t.Fatalf("responder %d did not drain", i+1)
		}
	}
	require.NoError(t, tel.Shutdown(ctx), "OTLP export to %s", endpoint)

	// Jaeger stores what its receiver got asynchronously: poll its query
	// API, within jaegerWait, until the trace has its 5 spans.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	url := strings.TrimRight(query, "/") + "/api/traces/" + traceID
	var got jaegerTrace
	deadline := time.Now().Add(jaegerWait)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		got = jaegerTrace{}
		if resp, err := client.Get(url); err == nil {
			if resp.StatusCode == http.StatusOK {
				_ = json.NewDecoder(resp.Body).Decode(&got)
			}
			_ = resp.Body.Close()
		}
		if len(got.Data) == 1 && len(got.Data[0].Spans) >= 5 {
			break
		}
		require.True(t, time.Now().Before(deadline), "trace %s not in Jaeger at %s within %v: %+v", traceID, url, jaegerWait, got)
		<-tick.C
	}

	spans := got.Data[0].Spans
	byName := map[string][]string{} // operation name → span IDs
	parent := map[string]string{}   // span ID → parent span ID
	for _, sp := range spans {
		assert.Equal(t, traceID, sp.TraceID)
		byName[sp.OperationName] = append(byName[sp.OperationName], sp.SpanID)
		for _, r := range sp.References {
			if r.RefType == "CHILD_OF" {
				parent[sp.SpanID] = r.SpanID
			}
		}
	}
	assert.Len(t, spans, 5, "%+v", spans)
	require.Len(t, byName["jaeger test"], 1)
	require.Len(t, byName["gather "+subject], 1)
	g := byName["gather "+subject][0]
	assert.Equal(t, byName["jaeger test"][0], parent[g])
	require.Len(t, byName["process "+subject], 3)
	for _, p := range byName["process "+subject] {
		assert.Equal(t, g, parent[p], "a responder's span is the gather's child")
	}
}

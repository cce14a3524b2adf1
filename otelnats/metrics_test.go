package otelnats_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"reqreply/gather"
	"reqreply/hedge"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
	"reqreply/otelnats"
)

// The metrics' counts equal the Results' counts: gathers of 1, 2 and 3
// replies (MaxReplies) and one that stops at its deadline with 2, in every
// variant, give reqreply.gather.replies' count and sum, the stops per
// reason and the duration histogram's count.
func TestMetricsEqualResults(t *testing.T) {
	s := testserver.New(t)
	resp := connect(t, s.ClientURL(), "responders")
	for i := range 2 {
		_, err := resp.Subscribe("count", func(m *nats.Msg) { _ = m.Respond(fmt.Append(nil, i)) })
		require.NoError(t, err)
	}
	require.NoError(t, resp.Flush())
	for _, name := range variants.Names {
		t.Run("variant="+name, func(t *testing.T) {
			rec := newRecorded(t)
			nc := connect(t, s.ClientURL(), "requester")
			v, release, err := variants.New(name, nc)
			require.NoError(t, err)
			t.Cleanup(func() { _ = release() })
			var results []gather.Result
			for _, opts := range [][]gather.Option{
				{gather.MaxReplies(1)}, {gather.MaxReplies(2)}, {gather.MaxReplies(2)},
				{gather.Timeout(100 * time.Millisecond)},
			} {
				// The last Timeout option wins: the deadline case keeps its own.
				res, err := rec.tel.Gather(context.Background(), v, "count", nil, append([]gather.Option{gather.Timeout(10 * time.Second)}, opts...)...)
				require.NoError(t, err)
				results = append(results, res)
			}
			// The stream form too, through the Variant wrapper.
			st, err := rec.tel.Variant(v).Stream(context.Background(), "count", nil, gather.MaxReplies(2))
			require.NoError(t, err)
			res, err := gather.Collect(st)
			require.NoError(t, err)
			results = append(results, res)

			m := rec.metrics(t)
			var replies int
			stops := map[gather.StopReason]int64{}
			for _, r := range results {
				replies += r.Count
				stops[r.Reason]++
			}
			n, total := histCount(t, m[otelnats.MetricGatherReplies])
			assert.Equal(t, uint64(len(results)), n)
			assert.Equal(t, float64(replies), total)
			for reason, want := range stops {
				assert.Equal(t, want, sum(t, m[otelnats.MetricGatherStops], otelnats.KeyStopReason.String(reason.String())), reason.String())
			}
			n, _ = histCount(t, m[otelnats.MetricDuration], otelnats.KeyOperationName.String("gather"))
			assert.Equal(t, uint64(len(results)), n)
			assert.Len(t, rec.named("gather count"), len(results))
		})
	}
}

// A hedged client's metrics equal its own counters, over requests whose
// hedge wins, whose first copy wins, and retries after no responders.
func TestHedgeMetricsEqualStats(t *testing.T) {
	rec := newRecorded(t)
	s := testserver.New(t)
	nc := connect(t, s.ClientURL(), "requester")
	// No responder: every request is retried until its deadline.
	c, err := hedge.NewClient(nc, hedge.Policy{Retry: &hedge.Backoff{Base: time.Millisecond, Max: 2 * time.Millisecond}},
		hedge.WithObserver(rec.tel.HedgeObserver()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = c.Request(ctx, "nobody", nil)
	// The deadline ends it as it comes: during an attempt
	// (nats.ErrNoResponders), a backoff (nats.ErrTimeout) or before the next
	// (both).
	require.True(t, errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout), "%v", err)
	st := c.Stats()
	require.Positive(t, st.Retries)
	m := rec.metrics(t)
	assert.Equal(t, st.Retries, sum(t, m[otelnats.MetricRetries]))
	reqs := rec.named("hedged request nobody")
	require.Len(t, reqs, 1)
	assert.Equal(t, codes.Error, reqs[0].Status().Code)
	assert.Equal(t, otelnats.ErrorType(err), attr(reqs[0], otelnats.KeyErrorType).AsString())
	copies := rec.named("send nobody")
	assert.Len(t, copies, int(st.Sent))
	for _, cp := range copies {
		assert.False(t, attr(cp, otelnats.KeyWon).AsBool())
		assert.Equal(t, reqs[0].SpanContext().SpanID(), cp.Parent().SpanID())
	}
}

// Admission leaves are counted: a responder with limit 1 leaves its group
// at each request it takes, and rejoins at its Done.
func TestAdmissionLeaves(t *testing.T) {
	rec := newRecorded(t)
	s := testserver.New(t)
	nc := connect(t, s.ClientURL(), "member")
	var a *hedge.Admission
	a = hedge.NewAdmission(1, func(h nats.MsgHandler) (*nats.Subscription, error) {
		return nc.QueueSubscribe("work", "workers", h)
	}, func(m *nats.Msg) {
		defer a.Done()
		_ = m.Respond([]byte("ok"))
	})
	rec.tel.ObserveAdmission(a)
	require.NoError(t, a.Join(nil))
	req := connect(t, s.ClientURL(), "requester")
	for range 3 {
		require.NoError(t, testserver.WaitForSubscribers(s, "work", 1))
		_, err := req.Request("work", nil, 10*time.Second)
		require.NoError(t, err)
	}
	_, leaves := a.Churn()
	assert.Equal(t, leaves, sum(t, rec.metrics(t)[otelnats.MetricAdmissionLeaves]))
	for _, sub := range a.Close() {
		_ = sub.Unsubscribe()
	}
}

// A micro endpoint's handler, wrapped, continues the requester's trace and
// marks its span with error status and the code when it replies with an
// error; ContextOf gives the span's context to the handler.
func TestMicroHandler(t *testing.T) {
	rec := newRecorded(t)
	s := testserver.New(t)
	svcConn := connect(t, s.ClientURL(), "service")
	inner := make(chan trace.SpanContext, 2)
	svc, err := micro.AddService(svcConn, micro.Config{Name: "greeter", Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: "greet", Handler: rec.tel.MicroHandler(micro.HandlerFunc(func(req micro.Request) {
			inner <- trace.SpanContextFromContext(otelnats.ContextOf(req))
			if string(req.Data()) == "" {
				_ = req.Error("400", "nobody to greet", nil)
				return
			}
			_ = req.Respond([]byte("hello, " + string(req.Data())))
		}))}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Stop() })
	// The endpoint's subscription is on svcConn: flushed, the server has it
	// before a request from another connection comes.
	require.NoError(t, svcConn.Flush())
	nc := connect(t, s.ClientURL(), "requester")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cases := []struct {
		name, data, errType string
	}{
		{name: "answered", data: "joe"},
		{name: "error reply", data: "", errType: "400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec.spans.Reset()
			msg, err := rec.tel.Request(ctx, nc, "greet", []byte(tc.data))
			require.NoError(t, err)
			require.NotNil(t, msg)
			sc := <-inner
			// The server span ends once the handler returns: after the reply.
			require.True(t, testserver.Settle(func() bool { return len(rec.named("process greet")) == 1 }))
			req, proc := rec.named("request greet"), rec.named("process greet")
			require.Len(t, req, 1)
			assert.Equal(t, req[0].SpanContext().SpanID(), proc[0].Parent().SpanID())
			assert.Equal(t, proc[0].SpanContext(), sc, "ContextOf is the server span's context")
			assert.Equal(t, tc.errType, attr(proc[0], otelnats.KeyErrorType).AsString())
			assert.Equal(t, tc.errType, attr(req[0], otelnats.KeyErrorType).AsString(), "the requester sees the error reply too")
			wantCode := codes.Unset
			if tc.errType != "" {
				wantCode = codes.Error
			}
			assert.Equal(t, wantCode, proc[0].Status().Code)
		})
	}
}

// HeaderCarrier finds a key as given, canonical, or in any spelling, and
// carries a trace context across a header.
func TestHeaderCarrier(t *testing.T) {
	cases := []struct {
		name   string
		header nats.Header
	}{
		{"lower", nats.Header{"traceparent": {"v"}}},
		{"canonical", nats.Header{"Traceparent": {"v"}}},
		{"upper", nats.Header{"TRACEPARENT": {"v"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, "v", otelnats.HeaderCarrier(tc.header).Get("traceparent"))
			assert.Len(t, otelnats.HeaderCarrier(tc.header).Keys(), 1)
		})
	}
	assert.Empty(t, otelnats.HeaderCarrier(nats.Header{}).Get("traceparent"))

	tel, err := otelnats.New(otelnats.WithPropagator(propagation.TraceContext{}))
	require.NoError(t, err)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: [16]byte{1}, SpanID: [8]byte{2}, TraceFlags: trace.FlagsSampled})
	h := nats.Header{}
	tel.Inject(trace.ContextWithSpanContext(context.Background(), sc), h)
	assert.Equal(t, "00-01000000000000000000000000000000-0200000000000000-01", h.Get("traceparent"))
	got := trace.SpanContextFromContext(tel.Extract(context.Background(), nats.Header{"Traceparent": h["traceparent"]}))
	assert.Equal(t, sc.TraceID(), got.TraceID())
	assert.True(t, got.IsRemote())
}

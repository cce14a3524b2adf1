package otelnats_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"reqreply/gather"
	"reqreply/internal/testserver"
	"reqreply/otelnats"
)

// replayed is a Variant that sends nothing and yields one reply it holds:
// what a gather costs without a network, so that the wrapper's own
// allocations are counted exactly.
type replayed struct{ msg *nats.Msg }

func (replayed) Name() string { return "replayed" }

func (r replayed) Stream(context.Context, string, []byte, ...gather.Option) (*gather.Stream, error) {
	return gather.NewStream(func(yield func(gather.Reply) bool) (gather.Result, error) {
		yield(gather.Reply{Msg: r.msg})
		return gather.Result{Count: 1, Reason: gather.StopMax}, nil
	}), nil
}

// Free when off: with the global providers unset, or the no-op ones, the
// wrappers allocate nothing of their own. The handler wrapper and the
// hedge observer allocate nothing at all; a gather through them allocates
// exactly what gather.Gather does (on a Variant without a network); a
// request and a gather on a real server what nats.go's request and
// gather.Gather do, within two allocations (the server in the process
// allocates too, a little more or less from run to run). Time is the
// benchmarks' to show (BenchmarkOff).
func TestFreeWhenOff(t *testing.T) {
	global, err := otelnats.New()
	require.NoError(t, err)
	noops, err := otelnats.New(otelnats.WithTracerProvider(tracenoop.NewTracerProvider()),
		otelnats.WithMeterProvider(noop.NewMeterProvider()))
	require.NoError(t, err)
	s := testserver.New(t)
	resp := connect(t, s.ClientURL(), "responder")
	_, err = resp.Subscribe("off", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
	require.NoError(t, err)
	require.NoError(t, resp.Flush())
	nc := connect(t, s.ClientURL(), "requester")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inbox := gather.Inbox{Conn: nc}
	const runs = 500

	plainReq := testing.AllocsPerRun(runs, func() {
		_, _ = nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: "off"})
	})
	replay := replayed{msg: &nats.Msg{Data: []byte("ok")}}
	plainReplay := testing.AllocsPerRun(runs, func() {
		_, _ = gather.Gather(ctx, replay, "off", nil, gather.MaxReplies(1))
	})
	plainGather := testing.AllocsPerRun(runs, func() {
		_, _ = gather.Gather(ctx, inbox, "off", nil, gather.MaxReplies(1))
	})
	for _, tc := range []struct {
		name string
		tel  *otelnats.Telemetry
	}{{"global unset", global}, {"no-op providers", noops}} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.tel.Handler(func(*nats.Msg) {})
			m := &nats.Msg{Subject: "off", Header: nats.Header{"traceparent": {"00-01000000000000000000000000000000-0200000000000000-01"}}}
			assert.Zero(t, testing.AllocsPerRun(runs, func() { h(m) }), "Handler")
			obs := tc.tel.HedgeObserver()
			assert.Zero(t, testing.AllocsPerRun(runs, func() {
				if obs.Start(ctx, "off") != nil {
					t.Fatal("an observer while off")
				}
			}), "HedgeObserver")

			assert.Equal(t, plainReplay, testing.AllocsPerRun(runs, func() {
				_, _ = tc.tel.Gather(ctx, replay, "off", nil, gather.MaxReplies(1))
			}), "Gather, no network")
			wrapped := tc.tel.Variant(replay) // once, as a program does
			assert.Equal(t, plainReplay, testing.AllocsPerRun(runs, func() {
				_, _ = gather.Gather(ctx, wrapped, "off", nil, gather.MaxReplies(1))
			}), "Variant, no network")

			assert.Zero(t, testing.AllocsPerRun(runs, func() {
				_, done := tc.tel.StartRequest(ctx, m)
				done(nil, nil)
			}), "StartRequest")

			req := testing.AllocsPerRun(runs, func() {
				_, _ = tc.tel.RequestMsg(ctx, nc, &nats.Msg{Subject: "off"})
			})
			assert.InDelta(t, plainReq, req, 2, "RequestMsg")
			g := testing.AllocsPerRun(runs, func() {
				_, _ = tc.tel.Gather(ctx, inbox, "off", nil, gather.MaxReplies(1))
			})
			assert.InDelta(t, plainGather, g, 2, "Gather")
			t.Logf("allocs/op: request %.2f (nats.go %.2f), gather %.2f (gather.Gather %.2f)", req, plainReq, g, plainGather)
		})
	}
}

// With tracing off, a request whose context already carries a trace context
// (from an instrumented caller) still passes it on in its headers.
func TestOffPassesTraceContextOn(t *testing.T) {
	tel, err := otelnats.New()
	require.NoError(t, err)
	s := testserver.New(t)
	resp := connect(t, s.ClientURL(), "responder")
	_, err = resp.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond([]byte(m.Header.Get("traceparent"))) })
	require.NoError(t, err)
	require.NoError(t, resp.Flush())
	nc := connect(t, s.ClientURL(), "requester")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: [16]byte{1}, SpanID: [8]byte{2}, TraceFlags: trace.FlagsSampled})
	ctx, cancel := context.WithTimeout(trace.ContextWithSpanContext(context.Background(), sc), 10*time.Second)
	defer cancel()

	msg, err := tel.Request(ctx, nc, "echo", nil)
	require.NoError(t, err)
	assert.Equal(t, "00-01000000000000000000000000000000-0200000000000000-01", string(msg.Data))
	msg, err = tel.Request(context.Background(), nc, "echo", nil)
	require.NoError(t, err)
	assert.Empty(t, string(msg.Data), "no trace context: nothing added")
}

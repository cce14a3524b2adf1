package otelnats_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"

	"reqreply/gather"
	"reqreply/hedge"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
	"reqreply/otelnats"
)

// traceparents returns the values of every spelling of traceparent in h.
func traceparents(h nats.Header) []string {
	var out []string
	for k, v := range h {
		if strings.EqualFold(k, "traceparent") {
			out = append(out, v...)
		}
	}
	return out
}

// A request whose headers already hold a trace context under another
// spelling of the key ("Traceparent", as an HTTP-minded sender writes it, or
// "TRACEPARENT") leaves with one traceparent, the requester's span's: the
// stale one is replaced, not kept beside it for a receiver that reads the
// key in another case to pick up.
func TestInjectReplacesOtherSpellings(t *testing.T) {
	rec := newRecorded(t)
	s := testserver.New(t)
	got := make(chan nats.Header, 1)
	resp := connect(t, s.ClientURL(), "responder")
	_, err := resp.Subscribe("svc", func(m *nats.Msg) {
		got <- m.Header
		_ = m.Respond([]byte("ok"))
	})
	require.NoError(t, err)
	require.NoError(t, resp.Flush())
	nc := connect(t, s.ClientURL(), "requester")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const stale = "00-11111111111111111111111111111111-2222222222222222-01"

	cases := []struct {
		name string
		send func(h nats.Header) error
	}{
		{"request", func(h nats.Header) error {
			_, err := rec.tel.RequestMsg(ctx, nc, &nats.Msg{Subject: "svc", Header: h})
			return err
		}},
		{"gather", func(h nats.Header) error {
			_, err := rec.tel.Gather(ctx, gather.Inbox{Conn: nc}, "svc", nil, gather.MaxReplies(1), gather.Header(h))
			return err
		}},
	}
	for _, tc := range cases {
		for _, key := range []string{"Traceparent", "TRACEPARENT"} {
			t.Run(tc.name+"/"+key, func(t *testing.T) {
				rec.spans.Reset()
				require.NoError(t, tc.send(nats.Header{key: {stale}}))
				h := <-got
				spans := rec.spans.Ended()
				require.NotEmpty(t, spans)
				sc := spans[len(spans)-1].SpanContext()
				assert.Equal(t, []string{"00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"}, traceparents(h))
			})
		}
	}
}

// Tracing never costs a request its answer: on a server without header
// support (nats-server before 2.2, or no_header_support), where no trace
// context can travel, a traced request, gather (every variant) and hedged
// request are sent without one and answered, as they are untraced; their
// spans still record them.
func TestTracedWithoutHeaderSupport(t *testing.T) {
	s := testserver.New(t, testserver.WithoutHeaders())
	resp := connect(t, s.ClientURL(), "responder")
	_, err := resp.Subscribe("svc", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
	require.NoError(t, err)
	require.NoError(t, resp.Flush())
	nc := connect(t, s.ClientURL(), "requester")
	require.False(t, nc.HeadersSupported())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	type sent struct {
		name, span string
		run        func(rec recorded) error
	}
	cases := []sent{
		{"request", "request svc", func(rec recorded) error {
			_, err := rec.tel.Request(ctx, nc, "svc", nil)
			return err
		}},
		{"hedge", "hedged request svc", func(rec recorded) error {
			c, err := hedge.NewClient(nc, hedge.Policy{}, hedge.WithObserver(rec.tel.HedgeObserver()))
			require.NoError(t, err)
			defer func() { _ = c.Close() }()
			_, err = c.Request(ctx, "svc", nil)
			return err
		}},
	}
	for _, name := range variants.Names {
		cases = append(cases, sent{"gather/" + name, "gather svc", func(rec recorded) error {
			v, release, err := variants.New(name, nc)
			require.NoError(t, err)
			defer func() { _ = release() }()
			res, err := rec.tel.Gather(ctx, v, "svc", nil, gather.MaxReplies(1))
			assert.Equal(t, 1, res.Count)
			return err
		}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorded(t)
			require.NoError(t, tc.run(rec))
			assert.Len(t, rec.named(tc.span), 1)
			requireSpansEnded(t, rec)
		})
	}
}

// A copy whose publish fails did not leave: a hedge or a retry sent while
// the connection is down (no reconnect buffer) counts in neither the
// metrics nor the client's Stats, and its span ends with the publish's
// error; the request's span has the error too.
func TestHedgeUnsentCopyNotCounted(t *testing.T) {
	cases := []struct {
		name   string
		policy hedge.Policy
		kind   string
		// metric is the counter the failed copy would be in.
		metric string
		stat   func(hedge.ClientStats) int64
	}{
		{"hedge", hedge.Policy{Hedge: hedge.Hedge{Delay: time.Hour}}, "hedge", otelnats.MetricHedgesSent,
			func(st hedge.ClientStats) int64 { return st.Hedges }},
		{"retry", hedge.Policy{Retry: &hedge.Backoff{Base: time.Millisecond, Max: time.Millisecond}}, "retry", otelnats.MetricRetries,
			func(st hedge.ClientStats) int64 { return st.Retries }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorded(t)
			s := testserver.New(t)
			// The hedge case has a responder that never answers; the retry
			// case none (no responders, then a retry).
			arrived := make(chan struct{}, 1)
			if tc.policy.Retry == nil {
				resp := connect(t, s.ClientURL(), "responder")
				_, err := resp.Subscribe("svc", func(*nats.Msg) { arrived <- struct{}{} })
				require.NoError(t, err)
				require.NoError(t, resp.Flush())
			}
			down := make(chan struct{})
			nc := connect(t, s.ClientURL(), "requester", nats.ReconnectBufSize(-1), nats.MaxReconnects(-1),
				nats.DisconnectErrHandler(func(*nats.Conn, error) { close(down) }))
			// The server goes before the next copy: when the first has
			// arrived (hedge) or in the backoff (retry).
			shutdown := func() {
				s.Shutdown()
				<-down
			}
			fire := make(chan time.Time, 1)
			c, err := hedge.NewClient(nc, tc.policy,
				hedge.WithObserver(rec.tel.HedgeObserver()),
				hedge.WithHedgeTimer(func(time.Duration) <-chan time.Time { return fire }),
				hedge.WithClock(nil, func(context.Context, time.Duration) error {
					shutdown()
					return nil
				}))
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Close() })
			if tc.policy.Retry == nil {
				go func() {
					<-arrived
					shutdown()
					fire <- time.Now()
				}()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = c.Request(ctx, "svc", nil)
			require.ErrorIs(t, err, nats.ErrReconnectBufExceeded)

			st := c.Stats()
			assert.Equal(t, int64(1), st.Sent)
			assert.Zero(t, tc.stat(st))
			m := rec.metrics(t)
			assert.Zero(t, sum(t, m[tc.metric]))
			assert.Zero(t, sum(t, m[otelnats.MetricHedgesWasted]))
			requireSpansEnded(t, rec)
			copies := rec.named("send svc")
			require.Len(t, copies, 2)
			for _, cp := range copies {
				if attr(cp, otelnats.KeyCopyKind).AsString() == tc.kind {
					assert.Equal(t, codes.Error, cp.Status().Code)
				} else {
					assert.Equal(t, codes.Unset, cp.Status().Code)
				}
			}
			reqs := rec.named("hedged request svc")
			require.Len(t, reqs, 1)
			assert.Equal(t, codes.Error, reqs[0].Status().Code)
		})
	}
}

package otelnats_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"reqreply/gather"
	"reqreply/hedge"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
	"reqreply/otelnats"
)

// serveTraced subscribes a responder named name on nc to subject, its
// handler wrapped by tel.Handler, answering with its name in
// gather.ResponderHeader; done gets a value once each request's span has
// ended.
func serveTraced(t *testing.T, tel *otelnats.Telemetry, nc *nats.Conn, subject, name string, done chan<- string) {
	t.Helper()
	h := tel.Handler(func(m *nats.Msg) {
		_ = m.RespondMsg(&nats.Msg{Data: []byte(name), Header: nats.Header{gather.ResponderHeader: {name}}})
	})
	_, err := nc.Subscribe(subject, func(m *nats.Msg) {
		h(m)
		done <- name
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
}

// A gather over three responders on three nodes of a cluster is one trace:
// the gather's span is the parent of the three responders' spans, and has an
// event per reply naming its responder. In every variant.
func TestGatherOneTraceAcrossCluster(t *testing.T) {
	cluster := testserver.NewCluster(t, 3)
	for _, name := range variants.Names {
		t.Run("variant="+name, func(t *testing.T) {
			rec := newRecorded(t)
			subject := "traced." + name
			done := make(chan string, 3)
			for i, s := range cluster {
				serveTraced(t, rec.tel, connect(t, s.ClientURL(), fmt.Sprint("responder ", i)), subject, fmt.Sprint("r", i), done)
			}
			for _, s := range cluster {
				require.NoError(t, testserver.WaitForSubscribers(s, subject, 3))
			}
			nc := connect(t, cluster[0].ClientURL(), "requester")
			v, release, err := variants.New(name, nc)
			require.NoError(t, err)
			t.Cleanup(func() { _ = release() })

			res, err := rec.tel.Gather(context.Background(), v, subject, []byte("hi"), gather.Timeout(10*time.Second), gather.MaxReplies(3))
			require.NoError(t, err)
			require.Equal(t, 3, res.Count)
			for range 3 {
				<-done
			}

			gathers := rec.named("gather " + subject)
			require.Len(t, gathers, 1)
			g := gathers[0]
			assert.Equal(t, trace.SpanKindClient, g.SpanKind())
			assert.Equal(t, "nats", attr(g, otelnats.KeySystem).AsString())
			assert.Equal(t, subject, attr(g, otelnats.KeyDestination).AsString())
			assert.Equal(t, gather.StopMax.String(), attr(g, otelnats.KeyStopReason).AsString())
			assert.Equal(t, int64(3), attr(g, otelnats.KeyReplies).AsInt64())
			assert.Equal(t, name, attr(g, otelnats.KeyVariant).AsString())
			var responders []string
			for _, e := range g.Events() {
				assert.Equal(t, "reply", e.Name)
				for _, kv := range e.Attributes {
					if kv.Key == otelnats.KeyResponder {
						responders = append(responders, kv.Value.AsString())
					}
				}
			}
			assert.ElementsMatch(t, []string{"r0", "r1", "r2"}, responders)

			processes := rec.named("process " + subject)
			require.Len(t, processes, 3)
			for _, p := range processes {
				assert.Equal(t, trace.SpanKindServer, p.SpanKind())
				assert.Equal(t, g.SpanContext().TraceID(), p.SpanContext().TraceID(), "one trace")
				assert.Equal(t, g.SpanContext().SpanID(), p.Parent().SpanID(), "the gather's span is the parent")
				assert.True(t, p.Parent().IsRemote())
			}
			if name == "inbox" {
				t.Log("\n" + drawTree(rec.spans.Ended()))
			}
		})
	}
}

// drawTree draws the spans as a tree, children under their parent, with
// their duration, kind and events: the drawing in docs/observability.md.
func drawTree(spans []sdktrace.ReadOnlySpan) string {
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID()] = true
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if p := s.Parent(); p.IsValid() && ids[p.SpanID()] {
			children[p.SpanID()] = append(children[p.SpanID()], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var draw func(s sdktrace.ReadOnlySpan, depth int, t0 time.Time)
	draw = func(s sdktrace.ReadOnlySpan, depth int, t0 time.Time) {
		fmt.Fprintf(&b, "%s%s [%s] +%v %v", strings.Repeat("  ", depth), s.Name(), s.SpanKind(),
			s.StartTime().Sub(t0).Round(time.Microsecond), s.EndTime().Sub(s.StartTime()).Round(time.Microsecond))
		if s.Status().Code == codes.Error {
			fmt.Fprintf(&b, " error %q", s.Status().Description)
		}
		b.WriteString("\n")
		for _, e := range s.Events() {
			fmt.Fprintf(&b, "%s  · %s +%v", strings.Repeat("  ", depth), e.Name, e.Time.Sub(t0).Round(time.Microsecond))
			for _, kv := range e.Attributes {
				fmt.Fprintf(&b, " %s=%s", kv.Key, kv.Value.Emit())
			}
			b.WriteString("\n")
		}
		for _, c := range children[s.SpanContext().SpanID()] {
			draw(c, depth+1, t0)
		}
	}
	for _, r := range roots {
		fmt.Fprintf(&b, "trace %s\n", r.SpanContext().TraceID())
		draw(r, 0, r.StartTime())
	}
	return b.String()
}

// A hedged request shows both copies in one trace, as children of the
// request's span, each the parent of the responder's span that handled it,
// and marks the copy whose reply won.
func TestHedgeCopiesOneTrace(t *testing.T) {
	rec := newRecorded(t)
	s := testserver.New(t)
	// The responder holds the first copy and answers the second: the hedge
	// wins. The hedge delay is over when the test says (WithHedgeTimer),
	// once the first copy has arrived.
	first, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{}, 2)
	var n atomic.Int32
	h := rec.tel.Handler(func(m *nats.Msg) {
		if n.Add(1) == 1 {
			close(first)
			<-release
		}
		_ = m.Respond([]byte("ok"))
	})
	// Each copy on its own goroutine, so the held first does not hold the
	// second.
	resp := connect(t, s.ClientURL(), "responder")
	_, err := resp.Subscribe("svc", func(m *nats.Msg) {
		go func() {
			h(m)
			done <- struct{}{}
		}()
	})
	require.NoError(t, err)
	require.NoError(t, resp.Flush())

	fire := make(chan time.Time, 1)
	nc := connect(t, s.ClientURL(), "requester")
	c, err := hedge.NewClient(nc, hedge.Policy{Hedge: hedge.Hedge{Delay: time.Hour}},
		hedge.WithObserver(rec.tel.HedgeObserver()),
		hedge.WithHedgeTimer(func(time.Duration) <-chan time.Time { return fire }))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	go func() {
		<-first
		fire <- time.Now()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg, err := c.Request(ctx, "svc", []byte("hi"))
	require.NoError(t, err)
	assert.Equal(t, "ok", string(msg.Data))
	close(release)
	<-done
	<-done

	reqs := rec.named("hedged request svc")
	require.Len(t, reqs, 1)
	r := reqs[0]
	copies := rec.named("send svc")
	require.Len(t, copies, 2)
	won := map[int64]bool{}
	for _, cp := range copies {
		assert.Equal(t, r.SpanContext().TraceID(), cp.SpanContext().TraceID())
		assert.Equal(t, r.SpanContext().SpanID(), cp.Parent().SpanID())
		won[attr(cp, otelnats.KeyCopy).AsInt64()] = attr(cp, otelnats.KeyWon).AsBool()
	}
	assert.Equal(t, map[int64]bool{0: false, 1: true}, won, "the hedge (copy 1) won")
	processes := rec.named("process svc")
	require.Len(t, processes, 2)
	parents := map[trace.SpanID]bool{}
	for _, p := range processes {
		assert.Equal(t, r.SpanContext().TraceID(), p.SpanContext().TraceID())
		parents[p.Parent().SpanID()] = true
	}
	assert.Equal(t, map[trace.SpanID]bool{copies[0].SpanContext().SpanID(): true, copies[1].SpanContext().SpanID(): true}, parents,
		"each copy is the parent of the responder's span that handled it")

	m := rec.metrics(t)
	st := c.Stats()
	assert.Equal(t, st.Hedges, sum(t, m[otelnats.MetricHedgesSent]))
	assert.Equal(t, int64(1), sum(t, m[otelnats.MetricHedgesWon]))
	assert.Equal(t, int64(0), sum(t, m[otelnats.MetricHedgesWasted]))
}

// deniedServer starts a server where the user "nopub" may not publish to
// "secret"; it returns the URL for user.
func deniedServer(t *testing.T) (*server.Server, func(user string) string) {
	t.Helper()
	s := testserver.New(t, testserver.WithUsers(
		&server.User{Username: "svc", Password: "svc"},
		&server.User{Username: "nopub", Password: "nopub", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Deny: []string{"secret"}},
		}},
	))
	return s, func(user string) string {
		return "nats://" + user + ":" + user + "@" + strings.TrimPrefix(s.ClientURL(), "nats://")
	}
}

// A denied gather and a request nobody answers carry error status and their
// error.type, and count in the metrics.
func TestErrorStatus(t *testing.T) {
	rec := newRecorded(t)
	_, url := deniedServer(t)
	nc := connect(t, url("nopub"), "requester")

	_, err := rec.tel.Request(context.Background(), nc, "nobody.home", nil)
	require.ErrorIs(t, err, nats.ErrNoResponders)
	res, err := rec.tel.Gather(context.Background(), gather.Inbox{Conn: nc, Denials: variants.Hook{}}, "secret", nil,
		gather.Timeout(time.Minute))
	require.ErrorIs(t, err, nats.ErrPermissionViolation)
	assert.Equal(t, gather.StopFailed, res.Reason)
	res, err = rec.tel.Gather(context.Background(), gather.Inbox{Conn: nc}, "nobody.home", nil, gather.Timeout(time.Minute))
	require.ErrorIs(t, err, nats.ErrNoResponders)
	assert.Equal(t, gather.StopNoResponders, res.Reason)

	cases := []struct {
		span, errType string
	}{
		{"request nobody.home", "no_responders"},
		{"gather secret", "denied"},
		{"gather nobody.home", "no_responders"},
	}
	for _, tc := range cases {
		t.Run(tc.span, func(t *testing.T) {
			spans := rec.named(tc.span)
			require.Len(t, spans, 1)
			assert.Equal(t, codes.Error, spans[0].Status().Code)
			assert.Equal(t, tc.errType, attr(spans[0], otelnats.KeyErrorType).AsString())
		})
	}
	m := rec.metrics(t)
	assert.Equal(t, int64(2), sum(t, m[otelnats.MetricNoResponders]))
	assert.Equal(t, int64(1), sum(t, m[otelnats.MetricGatherStops], otelnats.KeyStopReason.String(gather.StopFailed.String())))
	n, _ := histCount(t, m[otelnats.MetricDuration], otelnats.KeyErrorType.String("denied"))
	assert.Equal(t, uint64(1), n)
}

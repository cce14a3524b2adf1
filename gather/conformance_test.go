package gather_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/synadia-io/orbit.go/natsext"

	"reqreply/gather"
	"reqreply/multireply/variants"
)

// loop is what a conformance case may do in the range loop after the nth
// reply (from 1); returning false breaks out of the loop.
type loop func(t *testing.T, n int, r gather.Reply, cancel context.CancelFunc, requester *nats.Conn) bool

// TestConformance runs one table of scatter-gather cases against all three
// variants: every stop condition and their combinations, no responders
// before and after replies, cancel and connection close mid-gather, breaking
// out, empty and large payloads, headers and service errors. Where a variant
// behaves differently by design, the case says so in skip and another test
// shows the difference.
func TestConformance(t *testing.T) {
	large := bytes.Repeat([]byte("x"), 512*1024)
	tests := []struct {
		name       string
		serve      func(t *testing.T, nc *nats.Conn, subject string)
		data       []byte
		opts       []gather.Option
		loop       loop
		want       []string // reply payloads, in any order
		wantCount  int      // when want is nil
		wantReason gather.StopReason
		wantErr    error
		check      func(t *testing.T, replies []gather.Reply)
		checkRes   func(t *testing.T, res gather.Result)
		skip       map[string]string // variant → why it differs
	}{
		{name: "deadline collects everything", serve: echoN(3), opts: []gather.Option{gather.Timeout(time.Second)},
			want: []string{"reply from r1", "reply from r2", "reply from r3"}, wantReason: gather.StopDeadline},
		{name: "max stops at the nth reply", serve: echoN(5), opts: []gather.Option{gather.Timeout(10 * time.Second), gather.MaxReplies(3)},
			wantCount: 3, wantReason: gather.StopMax},
		{name: "max equal to responders returns without waiting", serve: echoN(4), opts: []gather.Option{gather.Timeout(time.Hour), gather.MaxReplies(4)},
			wantCount: 4, wantReason: gather.StopMax},
		{name: "more replies than max", serve: echoN(10), opts: []gather.Option{gather.Timeout(10 * time.Second), gather.MaxReplies(1)},
			wantCount: 1, wantReason: gather.StopMax},
		{name: "stall after the last reply", serve: both(sequence("a", "b", "c"), silent), opts: []gather.Option{gather.Timeout(time.Hour), gather.Stall(250 * time.Millisecond)},
			want: []string{"a", "b", "c"}, wantReason: gather.StopStalled},
		{name: "stall does not apply before the first reply", serve: slowEcho(300 * time.Millisecond),
			opts: []gather.Option{gather.Timeout(10 * time.Second), gather.Stall(50 * time.Millisecond)},
			want: []string{"reply from slow"}, wantReason: gather.StopStalled},
		{name: "stall gap capped by the deadline", serve: slowEcho(100 * time.Millisecond),
			opts: []gather.Option{gather.Timeout(400 * time.Millisecond), gather.Stall(390 * time.Millisecond)},
			want: []string{"reply from slow"}, wantReason: gather.StopDeadline},
		{name: "max before stall", serve: sequence("a", "b", "c"), opts: []gather.Option{gather.Timeout(time.Hour), gather.Stall(time.Second), gather.MaxReplies(2)},
			want: []string{"a", "b"}, wantReason: gather.StopMax},
		{name: "sentinel ends and is not a reply", serve: sequence("one", "two", "", "three"), opts: []gather.Option{gather.Timeout(time.Hour), gather.Sentinel(nil)},
			want: []string{"one", "two"}, wantReason: gather.StopSentinel},
		{name: "sentinel before max", serve: sequence("one", ""), opts: []gather.Option{gather.Timeout(time.Hour), gather.Sentinel(nil), gather.MaxReplies(5)},
			want: []string{"one"}, wantReason: gather.StopSentinel},
		{name: "custom sentinel", serve: sequence("a", "END", "b"),
			opts: []gather.Option{gather.Timeout(time.Hour), gather.Sentinel(func(m *nats.Msg) bool { return string(m.Data) == "END" })},
			want: []string{"a"}, wantReason: gather.StopSentinel},
		{name: "error reply is a reply, not the default sentinel", serve: sequence("one", errorMarker, "two", "", "three"),
			opts: []gather.Option{gather.Timeout(time.Hour), gather.Sentinel(nil)},
			want: []string{"one", "", "two"}, wantReason: gather.StopSentinel, check: errorReplySecond},
		{name: "error reply is a reply, not natsext's DefaultSentinel", serve: sequence("one", errorMarker, "two", "", "three"),
			opts: []gather.Option{gather.Timeout(time.Hour), gather.Sentinel(natsext.DefaultSentinel)},
			want: []string{"one", "", "two"}, wantReason: gather.StopSentinel, check: errorReplySecond},
		{name: "error reply counts toward max", serve: sequence(errorMarker, "one", "two"),
			opts: []gather.Option{gather.Timeout(time.Hour), gather.Sentinel(nil), gather.MaxReplies(2)},
			want: []string{"", "one"}, wantReason: gather.StopMax},
		{name: "empty payload is a reply without a sentinel", serve: sequence("", "x"), opts: []gather.Option{gather.Timeout(time.Hour), gather.MaxReplies(2)},
			want: []string{"", "x"}, wantReason: gather.StopMax},
		{name: "zero responders", opts: []gather.Option{gather.Timeout(time.Hour)},
			wantCount: 0, wantReason: gather.StopNoResponders, wantErr: nats.ErrNoResponders},
		{name: "no responders status after replies", serve: sequence("one", statusMarker, "two"), opts: []gather.Option{gather.Timeout(time.Hour)},
			want: []string{"one"}, wantReason: gather.StopNoResponders, wantErr: nats.ErrNoResponders},
		{name: "no responders status is not a sentinel", serve: sequence(statusMarker), opts: []gather.Option{gather.Timeout(time.Hour), gather.Sentinel(nil)},
			wantCount: 0, wantReason: gather.StopNoResponders, wantErr: nats.ErrNoResponders},
		{name: "cancel mid-gather keeps the replies", serve: both(sequence("one"), silent), opts: []gather.Option{gather.Timeout(time.Hour)},
			loop: func(_ *testing.T, _ int, _ gather.Reply, cancel context.CancelFunc, _ *nats.Conn) bool {
				cancel()
				return true
			},
			want: []string{"one"}, wantReason: gather.StopCancelled, wantErr: context.Canceled},
		{name: "connection closed mid-gather keeps the replies", serve: both(sequence("one"), silent), opts: []gather.Option{gather.Timeout(time.Hour)},
			loop: func(_ *testing.T, _ int, _ gather.Reply, _ context.CancelFunc, nc *nats.Conn) bool {
				nc.Close()
				return true
			},
			want: []string{"one"}, wantReason: gather.StopClosed, wantErr: nats.ErrConnectionClosed},
		{name: "caller breaks out", serve: sequence("a", "b", "c"), opts: []gather.Option{gather.Timeout(time.Hour)},
			loop: func(*testing.T, int, gather.Reply, context.CancelFunc, *nats.Conn) bool { return false },
			want: []string{"a"}, wantReason: gather.StopCaller},
		{name: "empty request payload", serve: echoData, data: nil, opts: []gather.Option{gather.Timeout(time.Hour), gather.MaxReplies(1)},
			want: []string{""}, wantReason: gather.StopMax},
		{name: "large request and reply payloads", serve: echoData, data: large, opts: []gather.Option{gather.Timeout(time.Hour), gather.MaxReplies(1)},
			want: []string{string(large)}, wantReason: gather.StopMax},
		{name: "request headers out, reply headers back", serve: echoData,
			opts:      []gather.Option{gather.Timeout(time.Hour), gather.MaxReplies(1), gather.Header(nats.Header{"Trace-Id": []string{"t-42"}})},
			wantCount: 1, wantReason: gather.StopMax,
			check: func(t *testing.T, replies []gather.Reply) {
				assert.Equal(t, "t-42", replies[0].Msg.Header.Get("Trace-Id"))
				assert.Equal(t, "echo", replies[0].Responder)
				assert.Nil(t, replies[0].ServiceError)
			}},
		{name: "service error headers surfaced per reply", serve: microFailing, opts: []gather.Option{gather.Timeout(time.Hour), gather.MaxReplies(1)},
			wantCount: 1, wantReason: gather.StopMax,
			check: func(t *testing.T, replies []gather.Reply) {
				require.NotNil(t, replies[0].ServiceError)
				assert.Equal(t, &gather.ServiceError{Code: "503", Description: "overloaded"}, replies[0].ServiceError)
				assert.EqualError(t, replies[0].ServiceError, "service error 503: overloaded")
			}},
		{name: "expect ends at the last expected reply", serve: both(echoN(3), silent), opts: []gather.Option{gather.Timeout(time.Hour), gather.Expect("r1", "r2", "r3")},
			want: []string{"reply from r1", "reply from r2", "reply from r3"}, wantReason: gather.StopExpected,
			checkRes: missingRepeated(nil, nil)},
		{name: "expect names the missing at the deadline", serve: echoN(2), opts: []gather.Option{gather.Timeout(300 * time.Millisecond), gather.Expect("r1", "r2", "r9", "r3")},
			want: []string{"reply from r1", "reply from r2"}, wantReason: gather.StopDeadline,
			checkRes: missingRepeated([]string{"r9", "r3"}, nil)},
		{name: "expect names the repeated and ignores the unknown", serve: both(answersFrom("a", "x", "", "a", "b"), silent),
			opts: []gather.Option{gather.Timeout(time.Hour), gather.Expect("a", "b")},
			want: []string{"a", "x", "", "a", "b"}, wantReason: gather.StopExpected,
			checkRes: missingRepeated(nil, []string{"a"})},
		{name: "expect counts an error reply as an answer", serve: both(answersFrom("a", errorMarker+"b"), silent),
			opts: []gather.Option{gather.Timeout(time.Hour), gather.Expect("a", "b")},
			want: []string{"a", ""}, wantReason: gather.StopExpected, checkRes: missingRepeated(nil, nil)},
		{name: "expect and max on the same reply is expected", serve: both(echoN(2), silent),
			opts:      []gather.Option{gather.Timeout(time.Hour), gather.MaxReplies(2), gather.Expect("r1", "r2")},
			wantCount: 2, wantReason: gather.StopExpected},
		{name: "max before expect names the missing", serve: both(answersFrom("a", "b"), silent),
			opts: []gather.Option{gather.Timeout(time.Hour), gather.MaxReplies(1), gather.Expect("a", "b")},
			want: []string{"a"}, wantReason: gather.StopMax, checkRes: missingRepeated([]string{"b"}, nil)},
		{name: "expect with no responders names them all", opts: []gather.Option{gather.Timeout(time.Hour), gather.Expect("a", "b")},
			wantCount: 0, wantReason: gather.StopNoResponders, wantErr: nats.ErrNoResponders, checkRes: missingRepeated([]string{"a", "b"}, nil)},
		{name: "expect with a sentinel before the last", serve: both(answersFrom("a", ""), silent),
			opts: []gather.Option{gather.Timeout(time.Hour), gather.Sentinel(nil), gather.Expect("a", "b")},
			want: []string{"a"}, wantReason: gather.StopSentinel, checkRes: missingRepeated([]string{"b"}, nil)},
		{name: "expect cancelled names the missing", serve: both(answersFrom("a"), silent), opts: []gather.Option{gather.Timeout(time.Hour), gather.Expect("a", "b")},
			loop: func(_ *testing.T, _ int, _ gather.Reply, cancel context.CancelFunc, _ *nats.Conn) bool {
				cancel()
				return true
			},
			want: []string{"a"}, wantReason: gather.StopCancelled, wantErr: context.Canceled, checkRes: missingRepeated([]string{"b"}, nil)},
		{name: "expect with the connection closed names the missing", serve: both(answersFrom("a"), silent), opts: []gather.Option{gather.Timeout(time.Hour), gather.Expect("a", "b")},
			loop: func(_ *testing.T, _ int, _ gather.Reply, _ context.CancelFunc, nc *nats.Conn) bool {
				nc.Close()
				return true
			},
			want: []string{"a"}, wantReason: gather.StopClosed, wantErr: nats.ErrConnectionClosed, checkRes: missingRepeated([]string{"b"}, nil)},
		{name: "expect counts the answer the caller breaks on", serve: both(answersFrom("a", "b"), silent), opts: []gather.Option{gather.Timeout(time.Hour), gather.Expect("a", "b", "c")},
			loop: func(_ *testing.T, n int, _ gather.Reply, _ context.CancelFunc, _ *nats.Conn) bool { return n < 2 },
			want: []string{"a", "b"}, wantReason: gather.StopCaller, checkRes: missingRepeated([]string{"c"}, nil)},
		{name: "stop when a quorum agrees", serve: both(sequence("yes", "no", "yes", "no", "yes", "yes"), silent),
			opts: []gather.Option{gather.Timeout(time.Hour), gather.StopWhen(agree(3, "yes"))},
			want: []string{"yes", "no", "yes", "no", "yes"}, wantReason: gather.StopCondition},
		{name: "stop when sees every reply so far in order", serve: both(sequence("a", "b", "c"), silent),
			opts: []gather.Option{gather.Timeout(time.Hour), gather.StopWhen(func(rs []gather.Reply) bool {
				return strings.Join(payloads(rs), "") == "abc"
			})},
			want: []string{"a", "b", "c"}, wantReason: gather.StopCondition},
		{name: "stop when never met ends at the deadline", serve: echoN(2),
			opts:      []gather.Option{gather.Timeout(300 * time.Millisecond), gather.StopWhen(agree(3, "reply from r1"))},
			wantCount: 2, wantReason: gather.StopDeadline},
		{name: "expect before stop when", serve: both(answersFrom("a", "b"), silent),
			opts:      []gather.Option{gather.Timeout(time.Hour), gather.Expect("a", "b"), gather.StopWhen(func(rs []gather.Reply) bool { return len(rs) == 2 })},
			wantCount: 2, wantReason: gather.StopExpected},
		{name: "stop when before max", serve: both(sequence("a", "b"), silent),
			opts:      []gather.Option{gather.Timeout(time.Hour), gather.MaxReplies(2), gather.StopWhen(func(rs []gather.Reply) bool { return len(rs) == 2 })},
			wantCount: 2, wantReason: gather.StopCondition},
		{name: "adaptive stall after the last reply", serve: both(sequence("a", "b", "c"), silent),
			opts: []gather.Option{gather.Timeout(time.Hour), gather.AdaptiveStall(100 * time.Millisecond)},
			want: []string{"a", "b", "c"}, wantReason: gather.StopStalled,
			checkRes: func(t *testing.T, res gather.Result) {
				// The gap allowed is at least the margin, never more than
				// the longest gap seen (the first reply's) plus the margin.
				assert.GreaterOrEqual(t, res.Elapsed, 100*time.Millisecond)
			},
			skip: map[string]string{"natsext": "natsext refuses AdaptiveStall: TestNatsextRefusesAdaptiveStall"}},
		{name: "adaptive stall follows a slow first reply", serve: both(paced(600*time.Millisecond, 300*time.Millisecond, "a", "b"), silent),
			opts: []gather.Option{gather.Timeout(time.Hour), gather.AdaptiveStall(50 * time.Millisecond)},
			want: []string{"a", "b"}, wantReason: gather.StopStalled,
			skip: map[string]string{"natsext": "natsext refuses AdaptiveStall: TestNatsextRefusesAdaptiveStall"}},
		{name: "adaptive stall does not apply before the first reply", serve: slowEcho(300 * time.Millisecond),
			opts: []gather.Option{gather.Timeout(10 * time.Second), gather.AdaptiveStall(50 * time.Millisecond)},
			want: []string{"reply from slow"}, wantReason: gather.StopStalled,
			skip: map[string]string{"natsext": "natsext refuses AdaptiveStall: TestNatsextRefusesAdaptiveStall"}},
		{name: "adaptive stall gap capped by the deadline", serve: both(slowEcho(200*time.Millisecond), silent),
			opts: []gather.Option{gather.Timeout(400 * time.Millisecond), gather.AdaptiveStall(50 * time.Millisecond)},
			want: []string{"reply from slow"}, wantReason: gather.StopDeadline,
			skip: map[string]string{"natsext": "natsext refuses AdaptiveStall: TestNatsextRefusesAdaptiveStall"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range variants.Names {
				t.Run("variant="+name, func(t *testing.T) {
					if why, ok := tc.skip[name]; ok {
						t.Skip(why)
					}
					env := newEnv(t)
					subject := "conformance." + strings.ReplaceAll(strings.ReplaceAll(tc.name, " ", "_"), ",", "")
					if tc.serve != nil {
						tc.serve(t, connect(t, env, "responders"), subject)
					}
					nc := connect(t, env, "requester")
					v, release, err := variants.New(name, nc)
					require.NoError(t, err)
					defer func() { _ = release() }()

					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					s, err := v.Stream(ctx, subject, tc.data, tc.opts...)
					require.NoError(t, err)
					var replies []gather.Reply
					for r := range s.Replies() {
						replies = append(replies, r)
						if tc.loop != nil && !tc.loop(t, len(replies), r, cancel, nc) {
							break
						}
					}
					res, err := s.Result()

					// The stop reason, the error's identity, the replies.
					assert.Equal(t, tc.wantReason, res.Reason, "stop reason")
					if tc.wantErr != nil {
						assert.ErrorIs(t, err, tc.wantErr)
					} else {
						assert.NoError(t, err)
					}
					assert.Equal(t, tc.wantReason.Normal(), err == nil, "normal ends have no error")
					assert.Equal(t, len(replies), res.Count)
					if tc.want != nil {
						got := payloads(replies)
						want := slices.Clone(tc.want)
						slices.Sort(got)
						slices.Sort(want)
						assert.Equal(t, want, got)
					} else {
						assert.Len(t, replies, tc.wantCount)
					}
					if tc.check != nil {
						tc.check(t, replies)
					}
					if tc.checkRes != nil {
						tc.checkRes(t, res)
					}

					// Nothing is left behind: the subscription count is back to
					// what the variant keeps between gathers.
					if !nc.IsClosed() {
						assert.Equal(t, baseline(v), nc.NumSubscriptions(), "subscriptions left behind")
					}
					if m, ok := v.(*gather.Mux); ok {
						assert.Zero(t, m.InFlight(), "tokens left behind")
					}
				})
			}
		})
	}
}

func payloads(replies []gather.Reply) []string {
	out := make([]string, len(replies))
	for i, r := range replies {
		out[i] = string(r.Msg.Data)
	}
	return out
}

// errorReplySecond checks that the second reply is the error reply, with
// its service error.
func errorReplySecond(t *testing.T, replies []gather.Reply) {
	require.Len(t, replies, 3)
	assert.Nil(t, replies[0].ServiceError)
	assert.Equal(t, &gather.ServiceError{Code: "500", Description: "failed"}, replies[1].ServiceError)
	assert.Nil(t, replies[2].ServiceError)
}

// slowEcho starts one responder, "slow", that answers after d: its "work".
func slowEcho(d time.Duration) func(t *testing.T, nc *nats.Conn, subject string) {
	return func(t *testing.T, nc *nats.Conn, subject string) {
		t.Helper()
		serveNamed(t, nc, subject, d, "slow")
	}
}

// microFailing starts a nats.go/micro service whose endpoint on subject
// answers every request with a service error, in micro's own headers.
func microFailing(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	svc, err := micro.AddService(nc, micro.Config{
		Name:    "failing",
		Version: "0.0.1",
		Endpoint: &micro.EndpointConfig{
			Subject: subject,
			Handler: micro.HandlerFunc(func(r micro.Request) { _ = r.Error("503", "overloaded", nil) }),
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Stop() })
	require.NoError(t, nc.Flush())
}

// paced starts one responder that answers every request with each payload
// in turn, the first after first, each other gap after the one before.
// Where a gap is the responder's "work", a sleep is what it stands for.
func paced(first, gap time.Duration, payloads ...string) func(t *testing.T, nc *nats.Conn, subject string) {
	return func(t *testing.T, nc *nats.Conn, subject string) {
		t.Helper()
		_, err := nc.Subscribe(subject, func(m *nats.Msg) {
			wait := first
			for _, p := range payloads {
				time.Sleep(wait)
				wait = gap
				if m.Respond([]byte(p)) != nil {
					return
				}
			}
		})
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
	}
}

// missingRepeated checks a Result's Missing and Repeated.
func missingRepeated(missing, repeated []string) func(t *testing.T, res gather.Result) {
	return func(t *testing.T, res gather.Result) {
		t.Helper()
		assert.Equal(t, missing, res.Missing, "missing")
		assert.Equal(t, repeated, res.Repeated, "repeated")
	}
}

// agree is a StopWhen predicate: n replies so far carry payload.
func agree(n int, payload string) func([]gather.Reply) bool {
	return func(rs []gather.Reply) bool {
		k := 0
		for _, r := range rs {
			if string(r.Msg.Data) == payload {
				k++
			}
		}
		return k >= n
	}
}

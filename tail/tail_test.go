package main

import (
	"context"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"reqreply/hedge"
	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newServerEnv starts a fresh embedded server for one test and returns it
// and an Env on it, drained and stopped when the test ends.
func newServerEnv(t *testing.T) (*server.Server, *cli.Env) {
	t.Helper()
	s := testserver.New(t)
	env := cli.NewEnv("tail", s.ClientURL())
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	return s, env
}

// stop stops m at the end of the test.
func stop(t *testing.T, m *Member) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cli.DrainTimeout)
	defer cancel()
	require.NoError(t, m.Stop(ctx))
}

// longCtx is a request context whose deadline never matters in a test.
func longCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestHedge checks, by events rather than by the clock, that the hedge is
// sent only once its delay is over (the test decides when that is), that
// the first reply wins whichever copy it answers, and that the other reply
// is dropped and counted.
func TestHedge(t *testing.T) {
	tests := []struct {
		name string
		// answerAtOnce: the responder answers before the delay ends, so no
		// hedge is ever sent.
		answerAtOnce bool
		// winner is the copy answered first (0 the original, 1 the hedge).
		winner int
	}{
		{name: "reply before the delay: no hedge", answerAtOnce: true},
		{name: "no reply: hedge after the delay, the hedge wins", winner: 1},
		{name: "no reply: hedge after the delay, the original wins", winner: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, env := newServerEnv(t)
			rc, err := env.Connect("responder")
			require.NoError(t, err)
			got := make(chan *nats.Msg, 4)
			_, err = rc.QueueSubscribe(Subject, Group, func(m *nats.Msg) {
				if tc.answerAtOnce {
					assert.NoError(t, m.Respond(append(m.Data, " responder"...)))
					return
				}
				got <- m
			})
			require.NoError(t, err)
			require.NoError(t, rc.Flush())

			nc, err := env.Connect("requester")
			require.NoError(t, err)
			// The delay ends when the test says so.
			fire := make(chan time.Time, 1)
			delays := make(chan time.Duration, 1)
			c, err := newClient(nc, hedge.Policy{Hedge: hedge.Hedge{Delay: 7 * time.Millisecond}},
				hedge.WithHedgeTimer(func(d time.Duration) <-chan time.Time { delays <- d; return fire }))
			require.NoError(t, err)
			defer c.Close()

			type result struct {
				msg *nats.Msg
				err error
			}
			done := make(chan result, 1)
			go func() {
				msg, err := c.Request(longCtx(t), Subject, []byte("42"))
				done <- result{msg, err}
			}()
			require.Equal(t, 7*time.Millisecond, <-delays, "the fixed delay")
			if tc.answerAtOnce {
				r := <-done
				require.NoError(t, r.err)
				assert.Equal(t, "42 responder", string(r.msg.Data))
				assert.Equal(t, hedge.ClientStats{Sent: 1}, c.Stats(), "no hedge without its delay")
				return
			}
			// The original has arrived and the delay is not over: one copy.
			first := <-got
			assert.Equal(t, int64(1), c.Stats().Sent, "a hedge before its delay")
			fire <- time.Now()
			second := <-got
			assert.Equal(t, int64(2), c.Stats().Sent)
			assert.Equal(t, int64(1), c.Stats().Hedges)
			assert.NotEqual(t, first.Reply, second.Reply, "each copy has a reply subject of its own")

			copies := []*nats.Msg{first, second}
			require.NoError(t, copies[tc.winner].Respond([]byte("42 copy-"+strconv.Itoa(tc.winner))))
			r := <-done
			require.NoError(t, r.err)
			assert.Equal(t, "42 copy-"+strconv.Itoa(tc.winner), string(r.msg.Data), "the first reply wins")
			require.NoError(t, copies[1-tc.winner].Respond([]byte("42 late")))
			require.NoError(t, rc.Flush())
			require.NoError(t, c.Settle(longCtx(t)))
			assert.Equal(t, int64(1), c.Stats().Dropped, "the second reply is dropped and counted")
		})
	}
}

// TestStartMemberRange checks that StartMember refuses options out of
// range, NaN among them, with nats.ErrInvalidArg and without connecting.
func TestStartMemberRange(t *testing.T) {
	tests := []struct {
		name string
		opts MemberOptions
	}{
		{"negative slow", MemberOptions{Fault: Fault{Slow: -1}}},
		{"stall rate NaN", MemberOptions{Fault: Fault{StallRate: math.NaN()}}},
		{"stall rate above 1", MemberOptions{Fault: Fault{StallRate: 1.5}}},
		{"negative admit", MemberOptions{Admit: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := startMember(cli.NewEnv("tail", "nats://127.0.0.1:1"), "member-1", tc.opts)
			assert.ErrorIs(t, err, nats.ErrInvalidArg)
		})
	}
}

// TestDeadlinePropagation checks that a member under Propagate skips a
// request whose deadline has passed, unanswered, and answers the others.
func TestDeadlinePropagation(t *testing.T) {
	tests := []struct {
		name     string
		header   string // "" for none; "past", "future" or a literal value
		answered bool
	}{
		{"expired: skipped", "past", false},
		{"in time: answered", "future", true},
		{"no deadline: answered", "", true},
		{"malformed deadline: answered", "soon", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, env := newServerEnv(t)
			m, err := startMember(env, "member-1", MemberOptions{Propagate: true})
			require.NoError(t, err)
			defer stop(t, m)
			nc, err := env.Connect("requester")
			require.NoError(t, err)
			inbox := nc.NewInbox()
			sub, err := nc.SubscribeSync(inbox)
			require.NoError(t, err)
			msg := &nats.Msg{Subject: Subject, Reply: inbox, Data: []byte("7"), Header: nats.Header{}}
			switch tc.header {
			case "past":
				hedge.SetDeadline(msg, time.Now().Add(-time.Second))
			case "future":
				hedge.SetDeadline(msg, time.Now().Add(time.Hour))
			case "":
			default:
				msg.Header.Set(hedge.DeadlineHeader, tc.header)
			}
			require.NoError(t, nc.PublishMsg(msg))
			require.NoError(t, nc.Flush())
			// The member has handled it and its reply, if any, is at the
			// server; the requester's flush then brings it in.
			require.NoError(t, m.Settle(longCtx(t)))
			require.NoError(t, nc.Flush())
			pending, _, err := sub.Pending()
			require.NoError(t, err)
			st := m.Stats()
			if tc.answered {
				require.Equal(t, 1, pending)
				reply, err := sub.NextMsg(testserver.ReadyTimeout)
				require.NoError(t, err)
				assert.Equal(t, "7 member-1", string(reply.Data))
				assert.Equal(t, int64(1), st.Executed)
				assert.Zero(t, st.Skipped)
				return
			}
			assert.Zero(t, pending, "an expired request got a reply")
			assert.Equal(t, int64(1), st.Skipped)
			assert.Zero(t, st.Executed)
		})
	}
}

// TestAdmission checks that a member with k requests in progress leaves the
// queue group (the server's interest drops to 0), still answers the
// requests it took, and rejoins once below k.
func TestAdmission(t *testing.T) {
	for _, k := range []int{1, 2, 3} {
		t.Run("k="+strconv.Itoa(k), func(t *testing.T) {
			s, env := newServerEnv(t)
			gate := make(chan struct{})
			m, err := startMember(env, "member-1", MemberOptions{Admit: k, Gate: gate})
			require.NoError(t, err)
			defer stop(t, m)
			require.NoError(t, testserver.WaitForSubscribers(s, Subject, 1))

			nc, err := env.Connect("requester")
			require.NoError(t, err)
			inbox := nc.NewInbox()
			sub, err := nc.SubscribeSync(inbox)
			require.NoError(t, err)
			for i := 1; i <= k; i++ {
				// One at a time, each taken before the next is sent, so
				// every one is routed while the member is still in.
				require.NoError(t, nc.PublishRequest(Subject, inbox, []byte(strconv.Itoa(i))))
				require.Eventually(t, func() bool { return m.Stats().Received == int64(i) },
					testserver.ReadyTimeout, time.Millisecond)
			}
			require.NoError(t, testserver.WaitForSubscribers(s, Subject, 0))
			assert.Equal(t, int64(1), m.Stats().Leaves)

			// Finishing one brings the member below k: it rejoins.
			gate <- struct{}{}
			require.NoError(t, testserver.WaitForSubscribers(s, Subject, 1))
			for range k - 1 {
				gate <- struct{}{}
			}
			for range k {
				_, err := sub.NextMsg(testserver.ReadyTimeout)
				require.NoError(t, err, "a request taken before leaving was not answered")
			}
			st := m.Stats()
			assert.Equal(t, int64(2), st.Joins)
			assert.Equal(t, int64(1), st.Leaves)
			assert.Equal(t, int64(k), st.Executed)
		})
	}
}

// TestRetryDeadline checks that retries stop before the overall deadline:
// the retry's clock is the test's, advanced only by the backoff waits, so
// the number of attempts follows from the schedule, whatever the machine's
// load.
func TestRetryDeadline(t *testing.T) {
	tests := []struct {
		name string
		// joinAt starts a member during the joinAt-th wait (0: never).
		joinAt      int
		wantWaits   []time.Duration
		wantErr     []error
		wantRetries int64
	}{
		{
			// Waits 9.9, 19.8, 39.6 ms end at 69.3 ms; the next, 39.6 ms,
			// would end at 108.9 ms, past the 100 ms budget.
			name:        "no responders until the budget is spent",
			wantWaits:   []time.Duration{9_900 * time.Microsecond, 19_800 * time.Microsecond, 39_600 * time.Microsecond},
			wantErr:     []error{hedge.ErrBudgetSpent, nats.ErrTimeout, nats.ErrNoResponders},
			wantRetries: 3,
		},
		{
			name:        "a member comes back during the second wait",
			joinAt:      2,
			wantWaits:   []time.Duration{9_900 * time.Microsecond, 19_800 * time.Microsecond},
			wantRetries: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, env := newServerEnv(t)
			nc, err := env.Connect("requester")
			require.NoError(t, err)
			ctx := longCtx(t)
			deadline, _ := ctx.Deadline()
			now := deadline.Add(-100 * time.Millisecond) // a 100 ms budget on the test's clock
			var waits []time.Duration
			var member *Member
			c, err := newClient(nc, hedge.Policy{Retry: &hedge.Backoff{Base: 10 * time.Millisecond, Max: 40 * time.Millisecond, Rand: func() float64 { return 0.99 }}},
				hedge.WithClock(func() time.Time { return now }, func(_ context.Context, d time.Duration) error {
					waits = append(waits, d)
					now = now.Add(d)
					require.True(t, now.Before(deadline), "a wait ended past the deadline")
					if len(waits) == tc.joinAt {
						m, err := startMember(env, "member-1", MemberOptions{})
						require.NoError(t, err)
						member = m
					}
					return nil
				}))
			require.NoError(t, err)
			defer c.Close()
			msg, err := c.Request(ctx, Subject, []byte("5"))
			if member != nil {
				defer stop(t, member)
			}
			assert.Equal(t, tc.wantWaits, waits)
			assert.Equal(t, tc.wantRetries, c.Stats().Retries)
			if tc.wantErr == nil {
				require.NoError(t, err)
				assert.Equal(t, "5 member-1", string(msg.Data))
				return
			}
			for _, want := range tc.wantErr {
				assert.ErrorIs(t, err, want)
			}
		})
	}
}

// TestRequestErrors checks the errors a bad request gets, at once (a bad
// backoff already from NewClient).
func TestRequestErrors(t *testing.T) {
	_, env := newServerEnv(t)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	tests := []struct {
		name    string
		policy  hedge.Policy
		ctx     context.Context
		want    error
		refused bool // by NewClient, before any request
	}{
		{"no deadline", hedge.Policy{}, context.Background(), nats.ErrInvalidArg, false},
		{"bad backoff", hedge.Policy{Retry: &hedge.Backoff{}}, longCtx(t), nats.ErrInvalidArg, true},
		{"no responders", hedge.Policy{}, longCtx(t), nats.ErrNoResponders, false},
		{"no responders, hedged", hedge.Policy{Hedge: hedge.Hedge{Delay: time.Hour}}, longCtx(t), nats.ErrNoResponders, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newClient(nc, tc.policy)
			if tc.refused {
				require.ErrorIs(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Request(tc.ctx, Subject, []byte("1"))
			assert.ErrorIs(t, err, tc.want)
		})
	}
}

// TestPatternsVerified runs every row of both fault models on a small load
// and checks correctness only: each caller got at most one reply, its own,
// and every reply is accounted for. Latencies are not asserted.
func TestPatternsVerified(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Requests, cfg.Slow, cfg.Stall, cfg.StallRate, cfg.Timeout = 150, time.Millisecond, 5*time.Millisecond, 0.05, 50*time.Millisecond
	for _, fault := range []string{"slow", "stall"} {
		for _, p := range patterns(cfg) {
			t.Run(fault+"/"+p.Key, func(t *testing.T) {
				_, env := newServerEnv(t)
				nc, err := env.Connect("requester")
				require.NoError(t, err)
				row, err := measure(longCtx(t), env, nc, cfg, faults(cfg)[fault], p, nil, io.Discard, false)
				require.NoError(t, err)
				assert.Equal(t, cfg.Requests, row.Load.Requests)
				assert.Zero(t, row.Load.Wrong, "a caller got another request's reply")
				assert.True(t, row.Verified(), "row %+v, client %+v, members %+v", row.Load, row.Client, row.Members)
			})
		}
	}
}

// TestRollingRestartRetry checks that with retries every request survives
// a rolling restart of a single member. The deadline is long, so that a
// slow machine cannot turn a gap into a timeout.
func TestRollingRestartRetry(t *testing.T) {
	_, env := newServerEnv(t)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	cfg := DefaultConfig()
	cfg.Timeout, cfg.Gap, cfg.Concurrency = 30*time.Second, 2*time.Millisecond, 4
	row, err := restartRow(longCtx(t), env, nc, cfg, 1, hedge.Policy{Retry: &hedge.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond}}, io.Discard)
	require.NoError(t, err)
	require.Positive(t, row.Load.Requests)
	assert.Equal(t, row.Load.Requests, row.Load.Answered, "%+v", row.Load)
	assert.Zero(t, row.Load.Wrong)
}

// TestFlags checks that bad usage is refused with cli.ErrUsage, including a
// flag the chosen mode would ignore.
func TestFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"defaults", nil, true},
		{"serve with a fault", []string{"-serve", "-fault", "stall", "-admit", "3"}, true},
		{"request with a pattern", []string{"-request", "-pattern", "adaptive"}, true},
		{"serve ignores -hedge", []string{"-serve", "-hedge", "1ms"}, false},
		{"request ignores -slow", []string{"-request", "-slow", "1ms"}, false},
		{"request takes -seed, for the retry jitter", []string{"-request", "-pattern", "admission", "-seed", "3"}, true},
		{"the demo ignores -pattern", []string{"-pattern", "hedged"}, false},
		{"both halves apart", []string{"-serve", "-request"}, false},
		{"unknown demo", []string{"-demo", "fast"}, false},
		{"unknown pattern", []string{"-request", "-pattern", "magic"}, false},
		{"zero timeout", []string{"-timeout", "0s"}, false},
		{"negative requests", []string{"-requests", "-1"}, false},
		{"huge requests", []string{"-requests", "2000000000"}, false},
		{"negative gap", []string{"-demo", "restart", "-gap", "-1ms"}, false},
		{"stall rate above 1", []string{"-stall-rate", "2"}, false},
		// flag parses NaN, which compares false with everything: it once
		// passed the range check and turned the stalls off.
		{"stall rate NaN", []string{"-stall-rate", "NaN"}, false},
		{"stall rate -Inf", []string{"-stall-rate", "-Inf"}, false},
		{"an argument", []string{"extra"}, false},
		{"the restart demo ignores -hedge", []string{"-demo", "restart", "-hedge", "1ms"}, false},
		{"the slow demo ignores -stall", []string{"-demo", "slow", "-stall", "1ms"}, false},
		{"the stall demo ignores -slow", []string{"-demo", "stall", "-slow", "1ms"}, false},
		{"the stall demo takes -workers", []string{"-demo", "stall", "-workers", "1"}, true},
		{"the charge demo", []string{"-demo", "charge", "-requests", "300", "-hedge", "1ms"}, true},
		{"the charge demo ignores -admit", []string{"-demo", "charge", "-admit", "3"}, false},
		// -serve once took these and ignored them.
		{"serve -fault slow ignores -workers", []string{"-serve", "-workers", "4"}, false},
		{"serve -fault slow ignores -stall", []string{"-serve", "-fault", "slow", "-stall", "1ms"}, false},
		{"serve -fault stall ignores -slow", []string{"-serve", "-fault", "stall", "-slow", "1ms"}, false},
		{"serve -fault stall takes -workers and -seed", []string{"-serve", "-fault", "stall", "-workers", "2", "-seed", "7"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			fs, check := flags(&cfg)
			fs.SetOutput(io.Discard)
			require.NoError(t, fs.Parse(tc.args))
			err := check()
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, cli.ErrUsage)
		})
	}
}

// TestServeAndRequest runs the halves apart on one server, as two programs
// would against one NATS_URL: -serve's members answer -request's requests.
func TestServeAndRequest(t *testing.T) {
	s, env := newServerEnv(t)
	cfg := DefaultConfig()
	cfg.Requests, cfg.Slow, cfg.Timeout, cfg.Pattern = 100, time.Millisecond, 10*time.Second, "adaptive"
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	var serveOut strings.Builder
	go func() { served <- Serve(ctx, env, cfg, &serveOut) }()
	require.NoError(t, testserver.WaitForSubscribers(s, Subject, cfg.Members))

	var out strings.Builder
	require.NoError(t, Request(longCtx(t), env, cfg, &out))
	assert.Contains(t, out.String(), "hedged, adaptive p95: 100 requests")
	assert.Contains(t, out.String(), "timed out 0, no responders 0, wrong replies 0")
	cancel()
	require.NoError(t, <-served)
	assert.Contains(t, serveOut.String(), "3 members (fault slow, admission k=0, 0 is off)")
}

// TestStrays checks that a message published to a client's inbox by hand
// is counted as a stray and never handed to a caller, even while a call
// waits: a caller gets only replies to its own call's reply subjects.
func TestStrays(t *testing.T) {
	_, env := newServerEnv(t)
	rc, err := env.Connect("responder")
	require.NoError(t, err)
	got := make(chan *nats.Msg, 1)
	_, err = rc.Subscribe(Subject, func(m *nats.Msg) { got <- m })
	require.NoError(t, err)
	require.NoError(t, rc.Flush())
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	c, err := newClient(nc, hedge.Policy{})
	require.NoError(t, err)
	defer c.Close()

	done := make(chan *nats.Msg, 1)
	go func() {
		msg, err := c.Request(longCtx(t), Subject, []byte("3"))
		assert.NoError(t, err)
		done <- msg
	}()
	req := <-got
	// Forged replies: a call never made, call 0, and a subject that does
	// not parse, all on the client's inbox; and for the call that waits, a
	// copy it never sent and subjects with a token too many (these once
	// reached the caller).
	forged := []string{c.Inbox() + ".999.0", c.Inbox() + ".0.0", c.Inbox() + ".x",
		c.Inbox() + ".1.1", c.Inbox() + ".1.0.0", c.Inbox() + ".1.x.0", c.Inbox() + ".1.-1"}
	for _, subj := range forged {
		require.NoError(t, rc.Publish(subj, []byte("3 forger")))
	}
	require.NoError(t, rc.Flush())
	require.NoError(t, c.Settle(longCtx(t)))
	assert.Equal(t, int64(len(forged)), c.Stats().Strays)
	require.NoError(t, req.Respond([]byte("3 responder")))
	assert.Equal(t, "3 responder", string((<-done).Data))
}

// TestRollingRestartInterrupted checks that a rolling restart whose context
// ends before it is over returns ctx's error and no table: a Ctrl-C during
// the restart once printed the rows measured so far, empty rows for the
// rest, and "met" for a retry row that never ran.
func TestRollingRestartInterrupted(t *testing.T) {
	_, env := newServerEnv(t)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := DefaultConfig()
	cfg.Gap = time.Millisecond
	table, err := RollingRestart(ctx, env, nc, cfg, nil, io.Discard)
	require.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, table)
}

// TestRestartVerdict checks the rolling restart's verdict: met only when
// plain requests failed and every retry row sent requests, none failing.
func TestRestartVerdict(t *testing.T) {
	row := func(name string, requests, answered int) *RestartRow {
		return &RestartRow{Name: name, Load: &LoadResult{Requests: requests, Answered: answered}}
	}
	tests := []struct {
		name string
		rows []*RestartRow
		met  bool
	}{
		{"retries fixed every failure", []*RestartRow{row("plain requests", 10, 7), row("retry", 10, 10)}, true},
		{"a retried request failed", []*RestartRow{row("plain requests", 10, 7), row("retry", 10, 9)}, false},
		{"plain requests never failed: nothing shown", []*RestartRow{row("plain requests", 10, 10), row("retry", 10, 10)}, false},
		{"a retry row that sent nothing", []*RestartRow{row("plain requests", 10, 7), row("retry", 10, 10), row("retry", 0, 0)}, false},
		{"no retry row", []*RestartRow{row("plain requests", 10, 7)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := (&RestartTable{Rows: tc.rows}).Verdict()
			assert.Equal(t, tc.met, !strings.HasSuffix(v, "NOT met"), v)
		})
	}
}

// TestSlowTargetsOneMember checks the slow-member targets when member-1 is
// the only member: there is no fast member to compare admission control
// with, and the verdict says so instead of comparing with a p99 of 0.
func TestSlowTargetsOneMember(t *testing.T) {
	cfg := DefaultConfig()
	table := &Table{Fault: "slow"}
	for _, p := range patterns(cfg) {
		table.Rows = append(table.Rows, &Row{
			Pattern: p,
			Load: &LoadResult{Requests: 1, Answered: 1, Latencies: []time.Duration{time.Millisecond},
				ByMember: map[string][]time.Duration{memberName(1): {time.Millisecond}}},
			Members: []MemberStats{{Name: memberName(1), Executed: 1, Joins: 1}},
		})
	}
	var out strings.Builder
	writeTargets(&out, []*Table{table}, nil)
	assert.Contains(t, out.String(), "slow member, admission k=2 + retry: p99 1.00ms, no fast member answered to compare with (n/a)")
	assert.NotContains(t, out.String(), "0.00ms")
}

// TestMemberGivesUp checks the paths where a member gives up work instead
// of waiting for it: Abandon with a request in progress that would never
// end (once it waited for it and failed with a settle timeout: -slow 8s
// ended the demo with "member-1: settle: context deadline exceeded"), Stop
// whose context ends while a request is in progress, and Stop after the
// server has gone (once it waited out its context on a drain that could
// not happen, one member after the other). Each ends every goroutine of
// the member (goleak) and counts the request as Backlog.
func TestMemberGivesUp(t *testing.T) {
	tests := []struct {
		name string
		// give gives up on m, which holds one request in progress, and
		// returns the error.
		give    func(t *testing.T, s *server.Server, m *Member) error
		wantErr error
	}{
		{
			name: "Abandon with work in progress",
			give: func(t *testing.T, _ *server.Server, m *Member) error {
				if err := m.Abandon(longCtx(t)); err != nil {
					return err
				}
				stop(t, m)
				return nil
			},
		},
		{
			name: "Stop out of time",
			give: func(_ *testing.T, _ *server.Server, m *Member) error {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return m.Stop(ctx)
			},
			wantErr: context.Canceled,
		},
		{
			name: "Stop with the server gone",
			give: func(t *testing.T, s *server.Server, m *Member) error {
				reconnecting := m.nc.StatusChanged(nats.RECONNECTING)
				defer m.nc.RemoveStatusListener(reconnecting)
				s.Shutdown()
				<-reconnecting
				return m.Stop(longCtx(t))
			},
			wantErr: nats.ErrConnectionReconnecting,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, env := newServerEnv(t)
			gate := make(chan struct{}) // never opened: the work never ends
			m, err := startMember(env, "member-1", MemberOptions{Gate: gate})
			require.NoError(t, err)
			nc, err := env.Connect("requester")
			require.NoError(t, err)
			require.NoError(t, nc.PublishRequest(Subject, nc.NewInbox(), []byte("1")))
			require.NoError(t, nc.Flush())
			require.Eventually(t, func() bool { return m.Stats().Received == 1 }, testserver.ReadyTimeout, time.Millisecond)
			nc.Close() // the requester is done, before any server goes away

			err = tc.give(t, s, m)
			if tc.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.wantErr)
			}
			st := m.Stats()
			assert.Equal(t, int64(1), st.Backlog, "%+v", st)
			assert.Zero(t, st.Executed)
			select {
			case <-m.done:
			default:
				t.Fatal("a worker is still running")
			}
		})
	}
}

// TestReplyAtDeadline checks that the clock, not the scheduler, decides a
// reply against the deadline: a reply the client takes when its clock says
// the overall deadline has passed is dropped and counted, and the request
// times out. Before, the select could take a reply after the deadline when
// both were ready, and return it.
func TestReplyAtDeadline(t *testing.T) {
	_, env := newServerEnv(t)
	m, err := startMember(env, "member-1", MemberOptions{})
	require.NoError(t, err)
	defer stop(t, m)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	ctx := longCtx(t)
	deadline, _ := ctx.Deadline()
	// The reply comes in at the deadline.
	c, err := newClient(nc, hedge.Policy{}, hedge.WithClock(func() time.Time { return deadline }, nil))
	require.NoError(t, err)
	defer c.Close()

	_, err = c.Request(ctx, Subject, []byte("1"))
	require.ErrorIs(t, err, nats.ErrTimeout)
	require.NoError(t, c.Settle(longCtx(t)))
	assert.Equal(t, int64(1), c.Stats().Dropped, "the late reply is counted")
}

// TestRetryPropagatesOverallDeadline checks that under a retry with a
// bounded attempt every copy carries the call's overall deadline, not the
// attempt's: a later attempt still takes an earlier copy's reply, so the
// responder must not skip it at the attempt's end.
func TestRetryPropagatesOverallDeadline(t *testing.T) {
	_, env := newServerEnv(t)
	rc, err := env.Connect("responder")
	require.NoError(t, err)
	_, err = rc.Subscribe(Subject, func(m *nats.Msg) {
		d, ok, err := hedge.DeadlineOf(m)
		assert.NoError(t, err)
		assert.True(t, ok)
		assert.NoError(t, m.Respond([]byte(d.Format(time.RFC3339Nano))))
	})
	require.NoError(t, err)
	require.NoError(t, rc.Flush())
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	c, err := newClient(nc, hedge.Policy{Propagate: true, Retry: &hedge.Backoff{Base: time.Millisecond, Max: time.Millisecond, Attempt: time.Second}})
	require.NoError(t, err)
	defer c.Close()
	ctx := longCtx(t)
	deadline, _ := ctx.Deadline()
	msg, err := c.Request(ctx, Subject, []byte("1"))
	require.NoError(t, err)
	got, err := time.Parse(time.RFC3339Nano, string(msg.Data))
	require.NoError(t, err)
	assert.True(t, got.Equal(deadline), "the copy carried %v, the call's deadline is %v", got, deadline)
}

// TestSeededJitter checks that -seed reaches the retry jitter of the
// fault-model rows: it once reached only the stalls and the rolling
// restart, and the admission rows drew from math/rand.
func TestSeededJitter(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 7
	want := hedge.SeededRand(7)()
	assert.NotEqual(t, want, hedge.SeededRand(8)(), "another seed, another sequence")
	for _, p := range patterns(cfg) {
		if p.Policy.Retry == nil {
			continue
		}
		require.NotNil(t, p.Policy.Retry.Rand, p.Name)
		assert.Equal(t, want, p.Policy.Retry.Rand(), p.Name)
	}
	assert.Equal(t, want, restartBackoff(cfg).Rand())
}

// TestRequestInterrupted checks that -request, interrupted, says how far
// it got and prints no figures: once it printed the figures of part of a
// run as if they were the whole.
func TestRequestInterrupted(t *testing.T) {
	_, env := newServerEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := DefaultConfig()
	cfg.Mode.Request = true
	var out strings.Builder
	err := Request(ctx, env, cfg, &out)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "baseline: interrupted after 0 of 3000 requests\n", out.String())
}

// TestRetryUntilTheDeadline checks that retries go on until the next wait
// would end past the overall deadline, however many that takes: once a
// call could send at most 64 copies (its reply buffer's size), so with
// short waits it gave up with ErrBudgetSpent long before its deadline.
// The clock is the test's: 0.5 ms waits in a 100 ms budget make 199.
func TestRetryUntilTheDeadline(t *testing.T) {
	_, env := newServerEnv(t)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	ctx := longCtx(t)
	deadline, _ := ctx.Deadline()
	now := deadline.Add(-100 * time.Millisecond)
	waits := 0
	c, err := newClient(nc, hedge.Policy{Retry: &hedge.Backoff{Base: time.Millisecond, Max: time.Millisecond, Rand: func() float64 { return 0.5 }}},
		hedge.WithClock(func() time.Time { return now }, func(_ context.Context, d time.Duration) error { waits++; now = now.Add(d); return nil }))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Request(ctx, Subject, []byte("1"))
	require.ErrorIs(t, err, hedge.ErrBudgetSpent)
	assert.ErrorIs(t, err, nats.ErrNoResponders)
	assert.Equal(t, 199, waits)
	assert.Equal(t, int64(199), c.Stats().Retries)
	assert.Equal(t, int64(200), c.Stats().Sent)
}

// TestWaitReplies checks that WaitReplies returns once the inbox has filed
// the replies asked for, taken or dropped, not counting strays, and with
// ctx's error when they never come.
func TestWaitReplies(t *testing.T) {
	_, env := newServerEnv(t)
	m, err := startMember(env, "member-1", MemberOptions{})
	require.NoError(t, err)
	defer stop(t, m)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	c, err := newClient(nc, hedge.Policy{})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.WaitReplies(longCtx(t), 0))
	_, err = c.Request(longCtx(t), Subject, []byte("1"))
	require.NoError(t, err)
	require.NoError(t, c.WaitReplies(longCtx(t), 1), "the reply taken counts")
	// A reply to a call that is over counts too; a stray does not.
	require.NoError(t, nc.PublishRequest(Subject, c.Inbox()+".1.0", []byte("1")))
	require.NoError(t, nc.Publish(c.Inbox()+".999.0", []byte("1 forger")))
	require.NoError(t, c.WaitReplies(longCtx(t), 2))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, c.WaitReplies(ctx, 3), context.Canceled)
	require.NoError(t, c.Settle(longCtx(t)))
	assert.Equal(t, hedge.ClientStats{Sent: 1, Dropped: 1, Strays: 1}, c.Stats())
}

// TestLoadWatchedConnectionLost checks that a load ends, with an error
// wrapping ErrConnectionLost and nats.ErrConnectionReconnecting, once the
// requester's server is gone: with the server killed mid-row, the demo
// once went on timing out every remaining request (12 s) and then failed
// with "client settle: context deadline exceeded".
func TestLoadWatchedConnectionLost(t *testing.T) {
	s, env := newServerEnv(t)
	m, err := startMember(env, "member-1", MemberOptions{})
	require.NoError(t, err)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	defer nc.Close()
	c, err := newClient(nc, hedge.Policy{})
	require.NoError(t, err)
	first := make(chan struct{})
	var once sync.Once
	never := make(chan struct{}) // the load would go on for ever
	type result struct {
		res *LoadResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := LoadWatched(context.Background(), c, Subject, LoadConfig{
			Concurrency: 2, Timeout: time.Minute, Until: never, Pace: time.Millisecond,
			Progress: func(int) { once.Do(func() { close(first) }) },
		})
		done <- result{res, err}
	}()
	<-first
	reconnecting := m.nc.StatusChanged(nats.RECONNECTING)
	defer m.nc.RemoveStatusListener(reconnecting)
	s.Shutdown()
	r := <-done
	require.ErrorIs(t, r.err, ErrConnectionLost)
	assert.ErrorIs(t, r.err, nats.ErrConnectionReconnecting)
	assert.Positive(t, r.res.Answered)
	<-reconnecting
	require.ErrorIs(t, m.Stop(longCtx(t)), nats.ErrConnectionReconnecting)
}

// TestServeEndsWhenAMemberIsClosed checks that -serve does not wait for a
// Ctrl-C with a member whose connection nats.go has closed for good: once
// it sat there serving nothing.
func TestServeEndsWhenAMemberIsClosed(t *testing.T) {
	_, env := newServerEnv(t)
	var members []*Member
	for i := 1; i <= 2; i++ {
		m, err := startMember(env, memberName(i), MemberOptions{})
		require.NoError(t, err)
		members = append(members, m)
	}
	done := make(chan error, 1)
	go func() { done <- untilClosed(context.Background(), members) }()
	members[1].nc.Close() // as nats.go does after its last reconnect attempt
	err := <-done
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
	assert.Contains(t, err.Error(), "member-2")
	require.ErrorIs(t, StopAll(context.Background(), members), nats.ErrConnectionClosed)

	// And ctx's end is the normal end.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, untilClosed(ctx, nil))
}

// Every request ends on time and leaves nothing behind (issue 16): a close
// mid-request ends it within one round trip, and after any request, however
// it ended, the client's and the server's subscriptions, the goroutines and
// the client's own per-request and per-subject state are back where they
// started.

package main

import (
	"context"
	"strconv"
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
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
	"reqreply/probe"
)

// closeTimeout is the deadline of a request that a close must end: a
// request that waited for it instead would take 10 s, and closeBound is
// the generous bound, well below it, that the close must beat on a loaded
// machine.
const (
	closeTimeout = 10 * time.Second
	closeBound   = 2 * time.Second
)

// silent subscribes a responder on subject that never answers and hands
// every request it gets, probes included, to the channel it returns.
func silent(t *testing.T, env *cli.Env, subject string) <-chan *nats.Msg {
	t.Helper()
	rc, err := env.Connect("silent responder")
	require.NoError(t, err)
	got := make(chan *nats.Msg, 64)
	_, err = rc.Subscribe(subject, func(m *nats.Msg) { got <- m })
	require.NoError(t, err)
	require.NoError(t, rc.Flush())
	return got
}

// hedgeAtOnce makes a Client's hedge due as soon as a request's first copy
// is out.
func hedgeAtOnce() hedge.Option {
	return hedge.WithHedgeTimer(func(time.Duration) <-chan time.Time {
		fired := make(chan time.Time, 1)
		fired <- time.Now()
		return fired
	})
}

// answerCopies subscribes a responder on Subject that waits for both
// copies of a hedged request, then answers copy winner first and the other
// after it (the loser's reply is dropped by the client).
func answerCopies(t *testing.T, env *cli.Env, winner int) {
	t.Helper()
	rc, err := env.Connect("hedge responder")
	require.NoError(t, err)
	var copies []*nats.Msg
	_, err = rc.Subscribe(Subject, func(m *nats.Msg) {
		copies = append(copies, m)
		if len(copies) < 2 {
			return
		}
		assert.NoError(t, copies[winner].Respond([]byte("1 copy-"+strconv.Itoa(winner))))
		assert.NoError(t, copies[1-winner].Respond([]byte("1 late")))
		copies = nil
	})
	require.NoError(t, err)
	require.NoError(t, rc.Flush())
}

// draws returns a Backoff.Rand that returns rs in turn, then the last of
// them for good.
func draws(rs ...float64) func() float64 {
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		r := rs[0]
		if len(rs) > 1 {
			rs = rs[1:]
		}
		return r
	}
}

// lockedOut starts a server whose requester may publish only to other.work
// (so Subject is denied to it), and returns it, an Env on it (closed when
// the test ends) and the options that connect as the requester.
func lockedOut(t *testing.T) (*server.Server, *cli.Env, []nats.Option) {
	t.Helper()
	users, ids := cli.Lockdown{Service: []string{"other.work"}}.Users()
	s := testserver.New(t, testserver.WithUsers(users...))
	env := cli.NewEnv("tail", s.ClientURL())
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	return s, env, ids[cli.Requester].Options()
}

// within returns a context with the given deadline, cancelled when the

// manySubjects starts a server for requests to many subjects under
// "tail.many.>", and returns an Env on it with the requester's options:
// with secure, a locked-down server that denies the requester every
// subject (lockedOut); else one where a responder echoes every request.
func manySubjects(t *testing.T, secure bool) (*cli.Env, []nats.Option) {
	t.Helper()
	if secure {
		_, env, opts := lockedOut(t)
		return env, opts
	}
	_, env := newServerEnv(t)
	rc, err := env.Connect("responder")
	require.NoError(t, err)
	_, err = rc.Subscribe("tail.many.>", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	require.NoError(t, err)
	require.NoError(t, rc.Flush())
	return env, nil
}

// test ends.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestRequestLeavesNothing makes one request through a Client in each way
// a request can end, and checks that afterwards the client's subscriptions,
// the server's (after a flush), the goroutines and the client's own
// per-request and per-subject state (calls, denial watches, WaitReplies
// waiters) are back where they started. A denied subject is the one thing
// kept: in the client's bounded cache of denied subjects (DeniedSubjects).
// Once every subject a client had asked stayed watched for its life.
func TestRequestLeavesNothing(t *testing.T) {
	tests := []struct {
		name   string
		secure bool // the requester may publish only to other.work
		policy hedge.Policy
		opts   []hedge.Option // the Client's, besides the checks
		// setup starts what the row needs, before the counts are taken,
		// and returns the request to make.
		setup func(t *testing.T, env *cli.Env, s *server.Server, nc *nats.Conn, c *hedge.Client) func() (*nats.Msg, error)
		want  error // nil: answered
		// closes: the requester's connection is closed during the wait,
		// and its subscriptions go with it.
		closes bool
	}{
		{
			name: "answered",
			setup: func(t *testing.T, env *cli.Env, _ *server.Server, _ *nats.Conn, c *hedge.Client) func() (*nats.Msg, error) {
				m, err := startMember(env, "member-1", MemberOptions{})
				require.NoError(t, err)
				t.Cleanup(func() { stop(t, m) })
				return func() (*nats.Msg, error) { return c.Request(longCtx(t), Subject, []byte("1")) }
			},
		},
		{
			name: "no responders",
			setup: func(t *testing.T, _ *cli.Env, _ *server.Server, _ *nats.Conn, c *hedge.Client) func() (*nats.Msg, error) {
				return func() (*nats.Msg, error) { return c.Request(longCtx(t), Subject, []byte("1")) }
			},
			want: nats.ErrNoResponders,
		},
		{
			name: "timed out",
			setup: func(t *testing.T, env *cli.Env, _ *server.Server, _ *nats.Conn, c *hedge.Client) func() (*nats.Msg, error) {
				silent(t, env, Subject)
				return func() (*nats.Msg, error) { return c.Request(within(t, 50*time.Millisecond), Subject, []byte("1")) }
			},
			want: nats.ErrTimeout,
		},
		{
			name: "cancelled",
			setup: func(t *testing.T, env *cli.Env, _ *server.Server, _ *nats.Conn, c *hedge.Client) func() (*nats.Msg, error) {
				got := silent(t, env, Subject)
				return func() (*nats.Msg, error) {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					go func() { <-got; cancel() }()
					return c.Request(ctx, Subject, []byte("1"))
				}
			},
			want: context.Canceled,
		},
		{
			name: "connection closed during the wait",
			setup: func(t *testing.T, env *cli.Env, _ *server.Server, nc *nats.Conn, c *hedge.Client) func() (*nats.Msg, error) {
				got := silent(t, env, Subject)
				return func() (*nats.Msg, error) {
					go func() { <-got; nc.Close() }()
					return c.Request(within(t, closeTimeout), Subject, []byte("1"))
				}
			},
			want:   nats.ErrConnectionClosed,
			closes: true,
		},
		{
			name: "refused up front: no deadline",
			setup: func(_ *testing.T, _ *cli.Env, _ *server.Server, _ *nats.Conn, c *hedge.Client) func() (*nats.Msg, error) {
				return func() (*nats.Msg, error) { return c.Request(context.Background(), Subject, []byte("1")) }
			},
			want: nats.ErrInvalidArg,
		},
		{
			name: "refused up front: over the server's max payload",
			setup: func(t *testing.T, _ *cli.Env, _ *server.Server, nc *nats.Conn, c *hedge.Client) func() (*nats.Msg, error) {
				big := make([]byte, nc.MaxPayload()+1)
				return func() (*nats.Msg, error) { return c.Request(longCtx(t), Subject, big) }
			},
			want: nats.ErrMaxPayload,
		},
		{
			name:   "denied",
			secure: true,
			setup: func(t *testing.T, _ *cli.Env, _ *server.Server, _ *nats.Conn, c *hedge.Client) func() (*nats.Msg, error) {
				return func() (*nats.Msg, error) { return c.Request(longCtx(t), Subject, []byte("1")) }
			},
			want: nats.ErrPermissionViolation,
		},
		{
			name: "admission refused: the only member is out of the group",
			setup: func(t *testing.T, env *cli.Env, s *server.Server, nc *nats.Conn, c *hedge.Client) func() (*nats.Msg, error) {
				gate := make(chan struct{})
				m, err := startMember(env, "member-1", MemberOptions{Admit: 1, Gate: gate})
				require.NoError(t, err)
				t.Cleanup(func() { close(gate); stop(t, m) })
				require.NoError(t, nc.Publish(Subject, []byte("0"))) // holds the member's one place
				require.NoError(t, testserver.WaitForSubscribers(s, Subject, 0))
				return func() (*nats.Msg, error) { return c.Request(longCtx(t), Subject, []byte("1")) }
			},
			want: nats.ErrNoResponders,
		},
		{
			// Two retries at once, then a wait of half an hour, past the
			// deadline: exhausted by the jitter drawn, not by the clock,
			// so a loaded machine cannot turn it into the deadline's
			// nats.ErrTimeout.
			name:   "retries exhausted",
			policy: hedge.Policy{Retry: &hedge.Backoff{Base: time.Hour, Max: time.Hour, Rand: draws(0, 0, 0.5)}},
			setup: func(t *testing.T, _ *cli.Env, _ *server.Server, _ *nats.Conn, c *hedge.Client) func() (*nats.Msg, error) {
				return func() (*nats.Msg, error) { return c.Request(longCtx(t), Subject, []byte("1")) }
			},
			want: hedge.ErrBudgetSpent,
		},
		{
			name:   "hedge won",
			policy: hedge.Policy{Hedge: hedge.Hedge{Delay: time.Hour}},
			opts:   []hedge.Option{hedgeAtOnce()},
			setup: func(t *testing.T, env *cli.Env, _ *server.Server, _ *nats.Conn, c *hedge.Client) func() (*nats.Msg, error) {
				answerCopies(t, env, 1)
				return func() (*nats.Msg, error) { return c.Request(longCtx(t), Subject, []byte("1")) }
			},
		},
		{
			name:   "hedge lost",
			policy: hedge.Policy{Hedge: hedge.Hedge{Delay: time.Hour}},
			opts:   []hedge.Option{hedgeAtOnce()},
			setup: func(t *testing.T, env *cli.Env, _ *server.Server, _ *nats.Conn, c *hedge.Client) func() (*nats.Msg, error) {
				answerCopies(t, env, 0)
				return func() (*nats.Msg, error) { return c.Request(longCtx(t), Subject, []byte("1")) }
			},
		},
		{
			name: "WaitReplies given up",
			setup: func(t *testing.T, _ *cli.Env, _ *server.Server, _ *nats.Conn, c *hedge.Client) func() (*nats.Msg, error) {
				return func() (*nats.Msg, error) {
					ctx, cancel := context.WithCancel(context.Background())
					cancel()
					return nil, c.WaitReplies(ctx, 1)
				}
			},
			want: context.Canceled,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s *server.Server
			var env *cli.Env
			var opts []nats.Option
			if tc.secure {
				s, env, opts = lockedOut(t)
			} else {
				s, env = newServerEnv(t)
			}
			var stderr clitest.Buffer
			env.Stderr = &stderr
			nc, err := env.Connect("requester", opts...)
			require.NoError(t, err)
			c, err := newClient(nc, tc.policy, tc.opts...)
			require.NoError(t, err)
			defer c.Close()
			request := tc.setup(t, env, s, nc, c)

			before, err := testserver.FootprintOf(s, nc)
			require.NoError(t, err)
			goroutines := goleak.IgnoreCurrent()

			_, err = request()
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}

			if tc.closes {
				assert.Zero(t, nc.NumSubscriptions())
				after, err := testserver.SettleFootprint(s, nc, func(f testserver.Footprint) bool { return f.Server == before.Server-before.Client })
				require.NoError(t, err)
				require.Equal(t, before.Server-before.Client, after.Server, "the server still counts the closed client's subscriptions")
			} else {
				require.NoError(t, c.Settle(longCtx(t)))
				after, err := testserver.FootprintOf(s, nc)
				require.NoError(t, err)
				assert.Equal(t, before.Client, after.Client, "subscriptions left on the client")
				assert.Equal(t, before.Server, after.Server, "subscriptions left on the server")
			}
			require.NoError(t, goleak.Find(goroutines), "goroutines left behind")
			want := hedge.Held{}
			if tc.secure {
				want.Denied = 1 // the bounded cache of denied subjects
			}
			assert.Equal(t, want, c.Held(), "per-request or per-subject state left behind")
			assert.Empty(t, stderr.String())
		})
	}
}

// TestCloseEndsRequest checks that a connection closed while a request
// waits ends it within one round trip with an error wrapping
// nats.ErrConnectionClosed, whatever it waits for: a reply, a hedge not
// yet due, one of two hedged copies, a retry's attempt, a retry's backoff,
// Await's readiness probes, or WaitReplies. The deadline is 10 s: once the request
// waited for it, and failed with nats.ErrTimeout.
func TestCloseEndsRequest(t *testing.T) {
	tests := []struct {
		name   string
		policy hedge.Policy
		// wait is how many requests the silent responder gets before the
		// close; 0: it is not started (the request meets no responders).
		wait int
		// inSleep: the close comes during the retry's backoff.
		inSleep bool
		hedge   bool // the hedge is due at once
		await   bool // Await instead of Request
		replies bool // WaitReplies instead of Request
	}{
		{name: "waiting for the reply", wait: 1},
		{name: "a hedge pending", policy: hedge.Policy{Hedge: hedge.Hedge{Delay: time.Hour}}, wait: 1},
		{name: "hedged: both copies out", policy: hedge.Policy{Hedge: hedge.Hedge{Delay: time.Hour}}, hedge: true, wait: 2},
		{name: "a retry's attempt", policy: hedge.Policy{Retry: &hedge.Backoff{Base: time.Millisecond, Max: time.Millisecond, Attempt: closeTimeout}}, wait: 1},
		{name: "a retry's backoff", policy: hedge.Policy{Retry: &hedge.Backoff{Base: closeTimeout / 2, Max: closeTimeout / 2, Rand: func() float64 { return 0.5 }}}, inSleep: true},
		{name: "Await's probes", await: true, wait: 1},
		{name: "WaitReplies", replies: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, env := newServerEnv(t)
			var got <-chan *nats.Msg
			if tc.wait > 0 {
				got = silent(t, env, Subject)
			}
			nc, err := env.Connect("requester")
			require.NoError(t, err)
			sleeping := make(chan struct{}, 1)
			opts := []hedge.Option{hedge.WithClock(nil, func(ctx context.Context, d time.Duration) error {
				sleeping <- struct{}{}
				return hedge.Sleep(ctx, d)
			})}
			if tc.hedge {
				opts = append(opts, hedgeAtOnce())
			}
			c, err := newClient(nc, tc.policy, opts...)
			require.NoError(t, err)
			defer c.Close()
			done := make(chan error, 1)
			go func() {
				var err error
				switch {
				case tc.await:
					_, err = awaitClient(within(t, closeTimeout), c, nil, Subject, probe.AnyResponder(), closeTimeout)
				case tc.replies:
					err = c.WaitReplies(within(t, closeTimeout), 1)
				default:
					_, err = c.Request(within(t, closeTimeout), Subject, []byte("1"))
				}
				done <- err
			}()
			for range tc.wait {
				<-got
			}
			if tc.inSleep {
				<-sleeping
			}
			if tc.replies {
				require.Eventually(t, func() bool { return c.Held().Waiters == 1 }, testserver.ReadyTimeout, time.Millisecond)
			}
			start := time.Now()
			nc.Close()
			select {
			case err = <-done:
			case <-time.After(2 * closeTimeout):
				t.Fatal("the request never ended")
			}
			elapsed := time.Since(start)
			require.ErrorIs(t, err, nats.ErrConnectionClosed)
			assert.Less(t, elapsed, closeBound, "the request waited for its deadline")
			assert.Equal(t, hedge.Held{}, c.Held())
		})
	}
}

// TestClientStateBounded checks that a Client's per-subject state is
// bounded by what is in flight: thousands of finished requests to as many
// subjects, answered or denied, leave no denial watch but those of the
// bounded cache of denied subjects (DeniedSubjects). Once every subject
// asked stayed watched (in the client and in cli's process-wide
// dispatcher) until Close.
func TestClientStateBounded(t *testing.T) {
	const subjects = 3200
	tests := []struct {
		name   string
		secure bool // every subject is denied
		want   hedge.Held
	}{
		{name: "answered", want: hedge.Held{}},
		{name: "denied", secure: true, want: hedge.Held{Denied: hedge.DeniedSubjects}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, opts := manySubjects(t, tc.secure)
			var stderr clitest.Buffer
			env.Stderr = &stderr
			nc, err := env.Connect("requester", opts...)
			require.NoError(t, err)
			c, err := newClient(nc, hedge.Policy{})
			require.NoError(t, err)
			defer c.Close()
			// Four callers, so that calls overlap.
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := w; i < subjects; i += 4 {
						_, err := c.Request(longCtx(t), "tail.many."+strconv.Itoa(i), []byte("1"))
						if tc.secure {
							assert.ErrorIs(t, err, nats.ErrPermissionViolation)
						} else {
							assert.NoError(t, err)
						}
					}
				})
			}
			wg.Wait()
			assert.Equal(t, tc.want, c.Held())
			require.NoError(t, c.Settle(longCtx(t)))
			assert.Empty(t, stderr.String(), "a denial printed besides the caller's error")
		})
	}
}

// TestMemberStateBounded checks that a member's per-request state is
// bounded by what is in flight: thousands of requests through a member
// whose admission control leaves and rejoins the group at every request
// leave it at most the subscriptions still draining, and a Settle given up
// while the member is busy leaves nothing behind (once each left a waiter
// until the member was next idle, which a busy member may never be).
func TestMemberStateBounded(t *testing.T) {
	_, env := newServerEnv(t)
	gate := make(chan struct{})
	m, err := startMember(env, "member-1", MemberOptions{Admit: 1, Gate: gate})
	require.NoError(t, err)
	defer stop(t, m)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	c, err := newClient(nc, hedge.Policy{Retry: &hedge.Backoff{Base: 100 * time.Microsecond, Max: time.Millisecond}})
	require.NoError(t, err)
	defer c.Close()

	// Busy: a request holds the member's one place; a Settle given up
	// then must not stay.
	require.NoError(t, nc.Publish(Subject, []byte("0")))
	require.Eventually(t, func() bool { return m.Stats().Received == 1 }, testserver.ReadyTimeout, time.Millisecond)
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		assert.Error(t, m.Settle(ctx))
		cancel()
	}
	_, idle := m.adm.Held()
	assert.Zero(t, idle, "Settle calls given up left waiters")
	gate <- struct{}{}

	close(gate) // from now on every request passes at once
	const requests = 2000
	for i := range requests {
		_, err := c.Request(longCtx(t), Subject, []byte(strconv.Itoa(i+1)))
		require.NoError(t, err)
	}
	require.NoError(t, m.Settle(longCtx(t)))
	subs, idle := m.adm.Held()
	assert.LessOrEqual(t, subs, 8, "subscriptions kept: the current one and those still draining, not one per leave")
	assert.Zero(t, idle)
	assert.Positive(t, m.Stats().Leaves, "admission control never left the group")
	assert.Equal(t, hedge.Held{}, c.Held())
}

// TestOwnErrorHandler checks that a caller's own nats.ErrorHandler, given
// at connect or set after the Client is made, does not switch off prompt
// denials: a denied request still ends within one round trip (not at its
// 10 s deadline) with nats.ErrPermissionViolation, and the caller's
// handler still sees the violation. internal/cli's denial watch chains
// whatever handler the caller sets, before or after.
func TestOwnErrorHandler(t *testing.T) {
	tests := []struct {
		name string
		// after: the handler is set with nc.SetErrorHandler after
		// NewClient; otherwise it is given at connect.
		after bool
	}{
		{name: "given at connect"},
		{name: "set after the client is made", after: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, env, opts := lockedOut(t)
			seen := make(chan error, 16)
			handler := func(_ *nats.Conn, _ *nats.Subscription, err error) {
				select {
				case seen <- err:
				default:
				}
			}
			if !tc.after {
				opts = append(opts, nats.ErrorHandler(handler))
			}
			nc, err := env.Connect("requester", opts...)
			require.NoError(t, err)
			c, err := newClient(nc, hedge.Policy{})
			require.NoError(t, err)
			defer c.Close()
			if tc.after {
				nc.SetErrorHandler(handler)
			}
			start := time.Now()
			_, err = c.Request(within(t, closeTimeout), Subject, []byte("1"))
			elapsed := time.Since(start)
			assert.NotErrorIs(t, err, nats.ErrTimeout, "the denial waited for the deadline")
			require.ErrorIs(t, err, nats.ErrPermissionViolation)
			assert.Contains(t, err.Error(), `Publish to "`+Subject+`"`)
			assert.Less(t, elapsed, closeBound)
			select {
			case err := <-seen:
				assert.ErrorIs(t, err, nats.ErrPermissionViolation)
				assert.Contains(t, err.Error(), Subject)
			case <-time.After(closeTimeout):
				t.Fatal("the caller's own handler never saw the violation")
			}
		})
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLoad runs the requester against the kinds of subscriber it may meet
// and checks what it counts: answers, timeouts, retries, duplicates, late
// replies, and the errors that end a run.
func TestLoad(t *testing.T) {
	errBefore := errors.New("before failed")
	tests := []struct {
		name    string
		members int  // workers in Group
		plain   int  // plain subscribers that also reply: duplicates
		silent  bool // one member that takes requests and never answers
		cfg     LoadConfig
		ctx     func() (context.Context, context.CancelFunc)
		want    Result // the counts only
		wantErr []error
	}{
		{name: "one member takes all", members: 1,
			cfg:  LoadConfig{Requests: 50, Concurrency: 1},
			want: Result{Requests: 50, Answered: 50}},
		{name: "three members, one in flight", members: 3,
			cfg:  LoadConfig{Requests: 60, Concurrency: 1},
			want: Result{Requests: 60, Answered: 60}},
		{name: "three members, 16 in flight", members: 3,
			cfg:  LoadConfig{Requests: 300, Concurrency: 16},
			want: Result{Requests: 300, Answered: 300}},
		{name: "more in flight than requests", members: 3,
			cfg:  LoadConfig{Requests: 10, Concurrency: 64},
			want: Result{Requests: 10, Answered: 10}},
		{name: "two plain responders: every request answered twice", plain: 2,
			cfg:  LoadConfig{Requests: 20, Concurrency: 4},
			want: Result{Requests: 20, Answered: 20, Duplicates: 20}},
		{name: "silent member: timeouts are counted, not errors", silent: true,
			cfg:  LoadConfig{Requests: 3, Concurrency: 3, Timeout: 50 * time.Millisecond},
			want: Result{Requests: 3, TimedOut: 3}},
		{name: "silent member with retry: each re-sent once", silent: true,
			cfg:  LoadConfig{Requests: 2, Concurrency: 2, Timeout: 50 * time.Millisecond, Retry: true},
			want: Result{Requests: 2, TimedOut: 2, Retried: 2}},
		{name: "nobody subscribes", cfg: LoadConfig{Requests: 5, Concurrency: 2},
			wantErr: []error{nats.ErrNoResponders}},
		{name: "before fails", members: 1,
			cfg: LoadConfig{Requests: 5, Concurrency: 1, At: 3,
				Before: func(context.Context) error { return errBefore }},
			wantErr: []error{errBefore}},
		{name: "caller cancelled", silent: true,
			cfg: LoadConfig{Requests: 5, Concurrency: 1, Timeout: time.Minute},
			ctx: func() (context.Context, context.CancelFunc) {
				c, f := context.WithCancel(context.Background())
				f()
				return c, f
			},
			wantErr: []error{context.Canceled}},
		{name: "caller deadline first", silent: true,
			cfg: LoadConfig{Requests: 5, Concurrency: 1, Timeout: time.Minute},
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 20*time.Millisecond)
			},
			wantErr: []error{context.DeadlineExceeded}},
		{name: "no requests", members: 1, cfg: LoadConfig{Requests: 0, Concurrency: 1}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "no concurrency", members: 1, cfg: LoadConfig{Requests: 1, Concurrency: 0}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "negative timeout", members: 1, cfg: LoadConfig{Requests: 1, Concurrency: 1, Timeout: -1}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "At out of range", members: 1,
			cfg:     LoadConfig{Requests: 5, Concurrency: 1, At: 6, Before: func(context.Context) error { return nil }},
			wantErr: []error{nats.ErrInvalidArg}},
		{name: "empty subject", members: 1, cfg: LoadConfig{Subject: " ", Requests: 1, Concurrency: 1}, wantErr: []error{nats.ErrBadSubject}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			members, err := startWorkers(env, DefaultConfig(), 1, tc.members, nil)
			require.NoError(t, err)
			for i := range tc.plain {
				m, err := join(env, Subject, "", fmt.Sprintf("plain-%d", i+1), MemberOptions{})
				require.NoError(t, err)
				members = append(members, m)
			}
			if tc.silent {
				m, err := join(env, Subject, Group, "silent", MemberOptions{Silent: true})
				require.NoError(t, err)
				members = append(members, m)
			}
			cfg := tc.cfg
			if cfg.Subject == "" {
				cfg.Subject = Subject
			}
			if cfg.Timeout == 0 {
				cfg.Timeout = 5 * time.Second
			}
			cfg.Settle = settleAll(members...)
			ctx, cancel := context.WithCancel(context.Background())
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			nc, err := env.Connect("requester")
			require.NoError(t, err)

			res, err := Load(ctx, nc, cfg)
			if len(tc.wantErr) > 0 {
				for _, want := range tc.wantErr {
					assert.ErrorIs(t, err, want)
				}
				if res != nil {
					// A run that ended early still accounts for every request.
					checkLaws(t, res, max(cfg.Replies, 1))
					assert.False(t, res.Exact())
				}
				return
			}
			require.NoError(t, err)
			checkLaws(t, res, max(cfg.Replies, 1))
			assert.Equal(t, tc.want.Requests, res.Requests, "requests")
			assert.Equal(t, tc.want.Answered, res.Answered, "answered")
			assert.Equal(t, tc.want.TimedOut, res.TimedOut, "timed out")
			assert.Equal(t, tc.want.Retried, res.Retried, "retried")
			assert.Equal(t, tc.want.Duplicates, res.Duplicates, "duplicates")
			assert.Zero(t, res.Late, "late")
			// The members' own counts agree with the replies the requester
			// saw (duplicates included).
			var answeredByMembers int64
			for _, m := range members {
				answeredByMembers += m.Answered()
			}
			assert.EqualValues(t, res.Replies+res.Duplicates+res.Late, answeredByMembers)
		})
	}
}

// TestLoadLateReply shows why a retry needs an idempotent handler: the
// first copy of the request is handled after it timed out, its reply comes
// late, and the retried copy is handled again.
func TestLoadLateReply(t *testing.T) {
	env := newEnv(t)
	release := make(chan struct{})
	svc, err := env.Connect("late")
	require.NoError(t, err)
	handled := 0 // read after Load, which settles svc first
	_, err = svc.QueueSubscribe(Subject, Group, func(m *nats.Msg) {
		handled++
		if handled == 1 {
			<-release // held past the requester's timeout
		}
		assert.NoError(t, m.Respond([]byte("late")))
	})
	require.NoError(t, err)
	require.NoError(t, svc.Flush())
	nc, err := env.Connect("requester")
	require.NoError(t, err)

	res, err := Load(context.Background(), nc, LoadConfig{
		// The retry must be answered within its timeout: 1 s, ample even
		// under -race on a loaded machine (the first copy is held by
		// release, not by the clock).
		Subject: Subject, Requests: 1, Concurrency: 1, Timeout: time.Second, Retry: true,
		BeforeRetry: func(context.Context) error { close(release); return nil },
		Settle:      func(ctx context.Context) error { return settle(ctx, "late", svc) },
	})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Answered)
	assert.Equal(t, 1, res.RetryAnswered)
	assert.Equal(t, 1, res.Late, "the first copy's reply")
	assert.Equal(t, 2, handled, "the request ran twice")
	assert.False(t, res.Exact())
}

// TestLoadBefore checks that Before runs once, after every earlier request
// was sent and before request At is.
func TestLoadBefore(t *testing.T) {
	env := newEnv(t)
	members, err := startWorkers(env, DefaultConfig(), 1, 1, nil)
	require.NoError(t, err)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	calls, seen := 0, int64(0)
	res, err := Load(context.Background(), nc, LoadConfig{
		Subject: Subject, Requests: 10, Concurrency: 1, Timeout: 5 * time.Second, At: 4,
		Before: func(context.Context) error {
			calls++
			seen = members[0].Received()
			return nil
		},
	})
	require.NoError(t, err)
	assert.True(t, res.Exact())
	assert.Equal(t, 1, calls)
	// One in flight: requests 1..3 were answered, so the member had them.
	assert.EqualValues(t, 3, seen)
}

// TestFairShare asserts that a queue group splits requests evenly at
// random, with a sound statistical bound instead of a hand-set threshold.
// Each member expects 200 requests; under an even random split the
// chi-square statistic of the counts exceeds ChiSquareCritical(K−1) with
// probability 1e-6 (FairnessAlpha), so the test fails by chance about once
// in a million runs, while a member taking, say, half again its share
// (300 of 600 with 3 members: statistic 75) fails it every time. Every
// member also gets work: one gets none with probability (1−1/K)^(200·K),
// below 1e-60.
func TestFairShare(t *testing.T) {
	tests := []struct {
		workers, concurrency int
	}{
		{2, 1}, {3, 1}, {3, 16}, {3, 64}, {8, 16},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("workers=%d/concurrency=%d", tc.workers, tc.concurrency), func(t *testing.T) {
			env := newEnv(t)
			members, err := startWorkers(env, DefaultConfig(), 1, tc.workers, nil)
			require.NoError(t, err)
			nc, err := env.Connect("requester")
			require.NoError(t, err)
			requests := 200 * tc.workers
			res, err := Load(context.Background(), nc, LoadConfig{
				Subject: Subject, Requests: requests, Concurrency: tc.concurrency,
				Timeout: 5 * time.Second, Settle: settleAll(members...),
			})
			require.NoError(t, err)
			require.True(t, res.Exact(), "%+v", res)

			_, counts := countsOf(res, names(members), true)
			require.Len(t, counts, tc.workers, "a reply from a stranger")
			for i, c := range counts {
				assert.Positive(t, c, "%s got nothing", members[i].Name)
			}
			stat, df := ChiSquareEven(counts)
			crit, ok := ChiSquareCritical(df)
			require.True(t, ok)
			assert.LessOrEqual(t, stat, crit, "counts %v are not an even random split (p < 1e-6)", counts)
		})
	}
}

// A message on the requester's inbox for a request not yet sent (someone
// else published it) is counted as a stray, not as that request's answer:
// taking it would hand a window token back twice and wedge the inbox.
func TestLoadStrayBeforeRequest(t *testing.T) {
	env := newEnv(t)
	svc, err := env.Connect("stray")
	require.NoError(t, err)
	var once sync.Once
	_, err = svc.QueueSubscribe(Subject, Group, func(m *nats.Msg) {
		once.Do(func() {
			// m.Reply is <inbox>.<attempt>.<number>: address request 3.
			inbox := m.Reply[:strings.LastIndex(m.Reply[:strings.LastIndex(m.Reply, ".")], ".")]
			assert.NoError(t, svc.Publish(inbox+".0.3", []byte("ghost")))
			assert.NoError(t, svc.Flush())
		})
		_ = m.Respond([]byte("worker"))
	})
	require.NoError(t, err)
	require.NoError(t, svc.Flush())
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	res, err := Load(context.Background(), nc, LoadConfig{
		Subject: Subject, Requests: 5, Concurrency: 1, Timeout: 5 * time.Second,
		Settle: func(ctx context.Context) error { return settle(ctx, "stray", svc) },
	})
	require.NoError(t, err)
	assert.Equal(t, 5, res.Answered)
	assert.Equal(t, 1, res.Strays)
	assert.Zero(t, res.Duplicates)
	assert.True(t, res.Exact())
}

// TestExpiryQueueBounded: the watchdog's queue holds what is in flight, not
// every attempt ever sent. A long run keeps it from ever emptying (a few
// attempts are always pending while the next is pushed), so the slots it
// has popped must be given back then too, or a run of a million requests
// would keep a million entries.
func TestExpiryQueueBounded(t *testing.T) {
	for _, inFlight := range []int{1, 4, 64} {
		t.Run(fmt.Sprintf("%d in flight", inFlight), func(t *testing.T) {
			var q expiryQueue
			q.init()
			ctx := context.Background()
			n := 0
			for ; n < inFlight; n++ {
				q.push(expiring{n: n})
			}
			for want := 0; n < 100_000; n, want = n+1, want+1 {
				e, ok := q.pop(ctx)
				require.True(t, ok)
				require.Equal(t, want, e.n, "first in, first out")
				q.push(expiring{n: n})
			}
			assert.LessOrEqual(t, cap(q.items), 4*inFlight+16, "entries kept for %d in flight", inFlight)
		})
	}
}

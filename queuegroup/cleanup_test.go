package main

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
	"reqreply/probe"
)

// This file checks that queuegroup's request paths (Load, ReadStats,
// Member.Leave) end in every way a request can end, promptly when the
// connection closes or the caller gives up, and leave nothing behind.

// ending is one way a request path of queuegroup's can end.
type ending struct {
	name string
	// member joins what serves the requests (nothing when nil); during
	// is handed to it and runs while the first request waits.
	member func(t *testing.T, env *cli.Env, during func())
	// during runs while the first request waits: it closes nc or
	// cancels the call's context. nil: nothing happens meanwhile.
	during func(nc *nats.Conn, cancel context.CancelFunc)
	// before runs before the call: a connection closed up front.
	before  func(nc *nats.Conn)
	secure  bool  // the requester may not publish on the subject
	wantErr error // nil: the call succeeds
	closed  bool  // nc is closed at the end
}

// endings lists every way a request path can end: answered, no
// responders, timed out, cancelled, closed during the wait, refused up
// front (a closed connection), denied.
func endings(subject string, join func(env *cli.Env, opts MemberOptions) error) []ending {
	answering := func(t *testing.T, env *cli.Env, _ func()) { require.NoError(t, join(env, MemberOptions{})) }
	silent := func(t *testing.T, env *cli.Env, during func()) {
		require.NoError(t, join(env, MemberOptions{Silent: true, Work: func([]byte) error { during(); return nil }}))
	}
	return []ending{
		{name: "answered", member: answering},
		{name: "no responders", wantErr: nats.ErrNoResponders},
		{name: "timed out", member: silent},
		{name: "cancelled during the wait", member: silent, during: func(_ *nats.Conn, cancel context.CancelFunc) { cancel() }, wantErr: context.Canceled},
		{name: "closed during the wait", member: silent, during: func(nc *nats.Conn, _ context.CancelFunc) { go nc.Close() }, wantErr: nats.ErrConnectionClosed, closed: true},
		{name: "refused up front", member: answering, before: func(nc *nats.Conn) { nc.Close() }, wantErr: nats.ErrConnectionClosed, closed: true},
		{name: "denied", secure: true, wantErr: nats.ErrPermissionViolation},
	}
}

// runEnding sets up tc on a fresh server, calls call (with the
// requester's connection and a context tc may cancel) once, checks its
// error against tc within a bound far below the 10 s timeout the calls
// use, then checks that the requester's subscriptions, the server's (after
// a flush, or once the closed connection is gone) and the goroutines are
// back where they were before the call.
func runEnding(t *testing.T, tc ending, subject string, call func(ctx context.Context, nc *nats.Conn) error) {
	srv, env := newServerEnv(t)
	nc, err := env.Connect("requester")
	if tc.secure {
		// A server of its own whose requester may publish only elsewhere.
		users, ids := cli.Lockdown{Service: []string{"elsewhere.>"}}.Users()
		srv = testserver.New(t, testserver.WithUsers(users...))
		env = cli.NewEnv("queuegroup", srv.ClientURL())
		t.Cleanup(func() { require.NoError(t, env.Close()) })
		nc, err = env.Connect("requester", ids[cli.Requester].Options()...)
	}
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if tc.member != nil {
		// The member takes the first request and sends a word to nc on a
		// connection of its own; nc's handler for it closes nc or cancels
		// the call. The server queued the PONG of the call's check (its
		// flush after the publish) for nc before the member could take
		// the request, so the word comes after it: the call is in its
		// wait when it closes.
		during := func() {}
		if tc.during != nil {
			_, err := nc.Subscribe("cleanup.during", func(*nats.Msg) { tc.during(nc, cancel) })
			require.NoError(t, err)
			word, err := env.Connect("word")
			require.NoError(t, err)
			during = func() { _ = word.Publish("cleanup.during", nil) }
		}
		tc.member(t, env, during)
		if !tc.secure {
			_, err := probe.Await(ctx, nc, subject, probe.AnyResponder(), 5*time.Second)
			require.NoError(t, err)
		}
	}
	before, err := testserver.FootprintOf(srv, nc)
	require.NoError(t, err)
	if tc.before != nil {
		tc.before(nc)
	}

	start := time.Now()
	err = call(ctx, nc)
	took := time.Since(start)
	if tc.wantErr == nil {
		require.NoError(t, err)
	} else {
		require.ErrorIs(t, err, tc.wantErr)
	}
	if tc.name != "timed out" {
		assert.Less(t, took, 2*time.Second, "ended within a round trip, not at the 10 s timeout")
	}

	if tc.closed {
		// The server drops a closed connection's subscriptions.
		after, err := testserver.SettleFootprint(srv, nc, func(f testserver.Footprint) bool { return f.Server <= before.Server-before.Client })
		require.NoError(t, err)
		require.LessOrEqual(t, after.Server, before.Server-before.Client, "the server kept the closed requester's subscriptions")
	} else {
		after, err := testserver.FootprintOf(srv, nc)
		require.NoError(t, err)
		assert.Equal(t, before.Client, after.Client, "the requester's subscriptions")
		assert.Equal(t, before.Server, after.Server, "the server's subscriptions, after a flush")
	}
	waitForGoroutines(t, before.Goroutines)
}

// TestLoadEndsCleanly: a load run ends in each way a request can end, and
// leaves nothing behind: a close or a cancel during the wait ends it within
// one round trip with nats.ErrConnectionClosed or ctx's error, and after
// each ending the requester's subscriptions, the server's and the
// goroutines are back where they were.
func TestLoadEndsCleanly(t *testing.T) {
	worker := func(env *cli.Env, opts MemberOptions) error {
		_, err := join(env, Subject, Group, "worker-1", opts)
		return err
	}
	for _, tc := range endings(Subject, worker) {
		t.Run(tc.name, func(t *testing.T) {
			timeout := 10 * time.Second
			if tc.name == "timed out" {
				timeout = 100 * time.Millisecond
			}
			runEnding(t, tc, Subject, func(ctx context.Context, nc *nats.Conn) error {
				res, err := Load(ctx, nc, LoadConfig{Subject: Subject, Requests: 2, Concurrency: 1, Timeout: timeout})
				if tc.name == "timed out" && err == nil {
					assert.Equal(t, 2, res.TimedOut)
				}
				return err
			})
		})
	}
}

// TestReadStatsEndsCleanly: ReadStats ends in each way a request can end,
// and leaves nothing behind, as TestLoadEndsCleanly.
func TestReadStatsEndsCleanly(t *testing.T) {
	subject, err := micro.ControlSubject(micro.StatsVerb, MicroService, "")
	require.NoError(t, err)
	for _, tc := range endings(subject, nil) {
		t.Run(tc.name, func(t *testing.T) {
			// The instance's id once one answers; otherwise one that never
			// answers, so that the read waits.
			expect := []string{"an id that never answers"}
			serve := func(env *cli.Env, opts MemberOptions) error {
				if opts.Silent {
					// Standing in for an instance that takes the request
					// and never answers.
					_, err := join(env, subject, "", "silent", opts)
					return err
				}
				in, err := startInstance(env, 0, "instance-1", 0)
				if err == nil {
					expect = []string{in.ID()}
				}
				return err
			}
			tc = endings(subject, serve)[slices.IndexFunc(endings(subject, nil), func(e ending) bool { return e.name == tc.name })]
			timeout := 10 * time.Second
			if tc.name == "timed out" {
				timeout = 100 * time.Millisecond
			}
			runEnding(t, tc, subject, func(ctx context.Context, nc *nats.Conn) error {
				_, err := ReadStats(ctx, nc, expect, timeout)
				return err
			})
		})
	}
}

// waitForGoroutines waits until at most n goroutines run (testserver.Settle:
// polled on tb's goroutine, which require.Eventually would not be), and
// fails tb with the stacks otherwise.
func waitForGoroutines(tb testing.TB, n int) {
	tb.Helper()
	if !testserver.Settle(func() bool { return runtime.NumGoroutine() <= n }) {
		buf := make([]byte, 1<<20)
		tb.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
	}
}

// TestMemberLeaveEnds: Member.Leave drains the member's subscription while
// its handler holds a request, and ends in each way it can: the handler
// finishes (nil), the caller's context is cancelled, or the member's
// connection closes during the wait, which ends it within a round trip with
// nats.ErrConnectionClosed instead of at the caller's deadline (nats.go
// does not report a subscription closed by its connection's close). The
// server's subscriptions and the goroutines are back where they were.
func TestMemberLeaveEnds(t *testing.T) {
	tests := []struct {
		name    string
		during  func(m *Member, cancel context.CancelFunc, release chan struct{})
		wantErr error
	}{
		{name: "the handler finishes", during: func(_ *Member, _ context.CancelFunc, release chan struct{}) { close(release) }},
		{name: "cancelled during the wait", during: func(_ *Member, cancel context.CancelFunc, _ chan struct{}) { cancel() }, wantErr: context.Canceled},
		{name: "closed during the wait", during: func(m *Member, _ context.CancelFunc, _ chan struct{}) { m.Conn().Close() }, wantErr: nats.ErrConnectionClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, env := newServerEnv(t)
			nc, err := env.Connect("requester")
			require.NoError(t, err)
			before, err := testserver.FootprintOf(srv, nc)
			require.NoError(t, err)

			taken, release := make(chan struct{}), make(chan struct{})
			m, err := join(env, Subject, Group, "worker-1", MemberOptions{Work: func([]byte) error {
				close(taken)
				<-release
				return nil
			}})
			require.NoError(t, err)
			require.NoError(t, nc.PublishRequest(Subject, nc.NewInbox(), []byte("1")))
			<-taken // the handler holds the request: the drain waits for it

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			left := make(chan error, 1)
			start := time.Now()
			go func() { left <- m.Leave(ctx) }()
			// The drain's UNSUB has reached the server once it no longer
			// counts the member.
			require.True(t, testserver.Settle(func() bool { return int(srv.NumSubscriptions()) == before.Server }),
				"the member's subscription is still on the server")
			tc.during(m, cancel, release)
			err = <-left
			took := time.Since(start)
			if tc.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.wantErr)
			}
			assert.Less(t, took, 2*time.Second, "ended within a round trip, not at the 10 s deadline")
			if tc.wantErr != nil {
				close(release) // the handler ends
			}
			if !m.Conn().IsClosed() {
				require.NoError(t, m.Drain(context.Background()))
			}
			waitForGoroutines(t, before.Goroutines)
		})
	}
}

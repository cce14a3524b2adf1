package denials_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
)

// However nats.go's own request (nc.RequestMsgWithContext) ends when it is
// given a denials.Context, it ends as nats.go ends it, and on time: a
// denied publish or a denied response mux within one round trip, with the
// denial (denials.Err), where without the Context it would wait out its
// 10 s; a close, a drain or a cancel during the wait at once. A caller's
// own error handler still sees every error. Afterwards the client's
// subscriptions, the server's and the goroutines are back where they were,
// and so is the dispatcher's state: nothing is left behind.
func TestContextEndings(t *testing.T) {
	s, env, ids := clitest.Locked(t, "svc.*")
	svc, err := env.Connect("service", ids[cli.Responder].Options()...)
	require.NoError(t, err)
	held := make(chan struct{}, 1)
	for token, handler := range map[string]nats.MsgHandler{
		"answer": func(m *nats.Msg) { _ = m.Respond([]byte("ok")) },
		"silent": func(*nats.Msg) {},
		"hold":   func(*nats.Msg) { held <- struct{}{} },
	} {
		_, err := svc.Subscribe("svc."+token, handler)
		require.NoError(t, err)
	}
	require.NoError(t, svc.Flush())

	const timeout = 10 * time.Second
	closeIt := func(nc *nats.Conn, _ context.CancelFunc) { nc.Close() }
	drainIt := func(nc *nats.Conn, _ context.CancelFunc) { _ = nc.Drain() }
	cancelIt := func(_ *nats.Conn, cancel context.CancelFunc) { cancel() }
	tests := []struct {
		name    string
		subject string
		timeout time.Duration
		inbox   string // the requester's inbox prefix; "" for its user's own
		plain   bool   // nats.Connect with the caller's own error handler, not an Env's connection
		during  func(nc *nats.Conn, cancel context.CancelFunc)
		want    error
		denied  bool // the error is the denial: nats.ErrPermissionViolation and denials.ErrDenied
		prompt  bool
		closes  bool
	}{
		{name: "answered", subject: "svc.answer"},
		{name: "no responders", subject: "svc.nobody", want: nats.ErrNoResponders},
		{name: "timed out", subject: "svc.silent", timeout: 50 * time.Millisecond, want: context.DeadlineExceeded},
		{name: "cancelled", subject: "svc.hold", during: cancelIt, want: context.Canceled, prompt: true},
		{name: "connection closed during the wait", subject: "svc.hold", during: closeIt, want: nats.ErrConnectionClosed, prompt: true, closes: true},
		{name: "drained during the wait", subject: "svc.hold", during: drainIt, want: nats.ErrConnectionClosed, prompt: true, closes: true},
		{name: "publish denied", subject: "other.x", want: nats.ErrPermissionViolation, denied: true, prompt: true},
		{name: "response inbox denied", subject: "svc.answer", inbox: "_INBOX", want: nats.ErrPermissionViolation, denied: true, prompt: true},
		{name: "refused up front: bad subject", subject: "svc.bad token", want: nats.ErrBadSubject},
		{name: "own error handler: publish denied", subject: "other.y", plain: true, want: nats.ErrPermissionViolation, denied: true, prompt: true},
		{name: "own error handler: response inbox denied", subject: "svc.answer", inbox: "_INBOX", plain: true, want: nats.ErrPermissionViolation, denied: true, prompt: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			goroutines := runtime.NumGoroutine()
			waiters0, _, _ := denials.DispatcherSizes()
			opts := ids[cli.Requester].Options()
			if tc.inbox != "" {
				opts = append(opts, nats.CustomInboxPrefix(tc.inbox))
			}
			var mu sync.Mutex
			var seen []error // what the caller's own handler got
			var nc *nats.Conn
			var err error
			if tc.plain {
				opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
					mu.Lock()
					defer mu.Unlock()
					seen = append(seen, err)
				}))
				nc, err = nats.Connect(s.ClientURL(), opts...)
			} else {
				nc, err = env.Connect("requester", opts...)
			}
			require.NoError(t, err)
			defer nc.Close()
			connected, err := testserver.FootprintOf(s, nc)
			require.NoError(t, err)
			// nats.go subscribes its response mux with the first request
			// and keeps it: a first request, so that it is there before
			// the count (unless the mux is what the server denies).
			if tc.inbox == "" {
				_, err := nc.RequestWithContext(context.Background(), "svc.answer", nil)
				require.NoError(t, err)
			}
			before, err := testserver.FootprintOf(s, nc)
			require.NoError(t, err)

			ctx, cancel := context.WithTimeout(context.Background(), cmp(tc.timeout, timeout))
			defer cancel()
			rctx, stop := denials.Context(ctx, nc, tc.subject)
			done := make(chan struct{})
			if tc.during != nil {
				go func() {
					select {
					case <-held:
						tc.during(nc, cancel)
					case <-done:
					}
				}()
			}
			start := time.Now()
			m, err := nc.RequestMsgWithContext(rctx, nats.NewMsg(tc.subject))
			err = denials.Err(rctx, err)
			took := time.Since(start)
			stop()
			close(done)

			if tc.want == nil {
				require.NoError(t, err)
				assert.Equal(t, "ok", string(m.Data))
			} else {
				require.ErrorIs(t, err, tc.want)
			}
			if tc.denied {
				assert.ErrorIs(t, err, denials.ErrDenied)
				assert.NotErrorIs(t, err, context.Canceled, "the denial, not the context's ending")
			}
			if tc.prompt {
				assert.Less(t, took, clitest.CloseBound, "the request must end within one round trip, not at its %v timeout", timeout)
			}
			if tc.plain {
				// The caller's handler sees the violation too (on nats.go's
				// goroutine, after the request has returned), and
				// denials.Claimed says a call returned it.
				require.Eventually(t, func() bool {
					mu.Lock()
					defer mu.Unlock()
					return len(seen) > 0
				}, timeout, time.Millisecond, "the caller's handler sees every error")
				mu.Lock()
				assert.ErrorIs(t, seen[0], nats.ErrPermissionViolation)
				assert.True(t, denials.Claimed(nc, seen[0]))
				mu.Unlock()
			}
			waiters, _, _ := denials.DispatcherSizes()
			assert.Equal(t, waiters0, waiters, "the watch is gone")
			if !tc.closes {
				want := before
				if tc.inbox != "" {
					// nats.go keeps its response mux subscription on the
					// client, denied on the server (and, unless
					// nats.PermissionErrOnSubscribe is set, that
					// subscription's goroutine): its, not the Context's.
					// The close below shows they go with the connection.
					want.Client++
					want.Goroutines++
				}
				clitest.RequireFootprint(t, s, nc, want)
			}
			nc.Close()
			clitest.RequireFootprint(t, s, nc, testserver.Footprint{Client: 0, Server: connected.Server, Goroutines: goroutines})
		})
	}
}

// After nats.go's response mux was denied, it is never subscribed again
// on that connection (until a reconnect): a later request would wait out
// its timeout with no new error. A later Context on that connection ends
// at once with the same denial.
func TestContextAfterDeniedMux(t *testing.T) {
	_, env, ids := clitest.Locked(t, "svc.*")
	nc, err := env.Connect("requester", append(ids[cli.Requester].Options(), nats.CustomInboxPrefix("_INBOX"))...)
	require.NoError(t, err)
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rctx, stop := denials.Context(ctx, nc, "svc.a")
		start := time.Now()
		_, err := nc.RequestWithContext(rctx, "svc.a", nil)
		err = denials.Err(rctx, err)
		stop()
		cancel()
		require.ErrorIs(t, err, denials.ErrDenied, "request %d", i)
		assert.ErrorIs(t, err, nats.ErrPermissionViolation)
		assert.Contains(t, err.Error(), `Subscription to "_INBOX.`)
		assert.Contains(t, err.Error(), denials.InboxHint)
		assert.Less(t, time.Since(start), clitest.CloseBound, "request %d", i)
	}
}

// cmp returns d, or def when d is 0.
func cmp(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// A denied response mux is every request's on the connection: it ends
// every Context of the connection, also one made before the one whose
// request was denied, and many first requests at once; and it is seen
// again after a reconnect, which subscribes the mux again and is denied
// again, watched for or not.
func TestContextMuxDeniedForEveryRequest(t *testing.T) {
	_, env, ids := clitest.Locked(t, "svc.*")
	connect := func(t *testing.T) *nats.Conn {
		nc, err := env.Connect("requester", append(ids[cli.Requester].Options(), nats.CustomInboxPrefix("_INBOX"))...)
		require.NoError(t, err)
		return nc
	}
	request := func(nc *nats.Conn, subject string) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rctx, stop := denials.Context(ctx, nc, subject)
		defer stop()
		start := time.Now()
		_, err := nc.RequestWithContext(rctx, subject, nil)
		return time.Since(start), denials.Err(rctx, err)
	}
	tests := []struct {
		name string
		run  func(t *testing.T, nc *nats.Conn) []error
	}{
		{"an older Context waits", func(t *testing.T, nc *nats.Conn) []error {
			_, stopIdle := denials.Context(context.Background(), nc, "svc.b") // its request not sent yet
			defer stopIdle()
			took, err := request(nc, "svc.a")
			assert.Less(t, took, clitest.CloseBound)
			return []error{err}
		}},
		{"many first requests", func(t *testing.T, nc *nats.Conn) []error {
			errs := make([]error, 8)
			var wg sync.WaitGroup
			for i := range errs {
				wg.Go(func() {
					var took time.Duration
					took, errs[i] = request(nc, "svc.a")
					assert.Less(t, took, clitest.CloseBound, "request %d", i)
				})
			}
			wg.Wait()
			return errs
		}},
		{"after a reconnect", func(t *testing.T, nc *nats.Conn) []error {
			_, first := request(nc, "svc.a")
			reconnects := nc.Stats().Reconnects
			require.NoError(t, nc.ForceReconnect())
			require.True(t, testserver.Settle(func() bool { return nc.Stats().Reconnects > reconnects && nc.IsConnected() }))
			require.NoError(t, nc.Flush()) // the mux subscribed again, and denied again, nobody watching
			took, again := request(nc, "svc.a")
			assert.Less(t, took, clitest.CloseBound)
			return []error{first, again}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nc := connect(t)
			defer nc.Close()
			for i, err := range tc.run(t, nc) {
				require.ErrorIs(t, err, denials.ErrDenied, "request %d", i)
				assert.ErrorIs(t, err, nats.ErrPermissionViolation)
				assert.Contains(t, err.Error(), denials.InboxHint)
			}
		})
	}
}

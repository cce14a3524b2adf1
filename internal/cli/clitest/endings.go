package clitest

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

// CloseBound bounds how long a call may take to end once its connection
// closes (or its context is cancelled, or the server denies it) while it
// waits with a 10 s timeout: 2 s, one round trip and much room for a
// loaded machine, well below the timeout it must not wait out.
const CloseBound = 2 * time.Second

// Ending is one way a call (a request, a wait for interest) can end, as
// RunEndings runs it.
type Ending struct {
	Name string
	// Call makes the call on nc, a requester connection of its own.
	Call func(ctx context.Context, nc *nats.Conn) error
	// Inbox is the requester's inbox prefix; "" for its user's own.
	Inbox string
	// Once, if set, runs before the footprint is read: what a connection
	// makes once for all its calls, not per call. nats.go's own request
	// subscribes one response subscription per connection, with a
	// goroutine, at the connection's first request, and keeps it until the
	// connection closes; a request leaves nothing beyond it.
	Once func(ctx context.Context, nc *nats.Conn)
	// Before, if set, runs before the call (a close, say).
	Before func(nc *nats.Conn)
	// During, if set, runs on its own goroutine once Trigger has
	// received, while the call waits (a close, a cancel of its context).
	During  func(nc *nats.Conn, cancel context.CancelFunc)
	Trigger <-chan struct{}
	// Want is the error the call's error wraps; nil for none.
	Want error
	// Prompt: the call must end within CloseBound.
	Prompt bool
}

// Locked starts a locked-down embedded nats-server (cli.Lockdown serving
// service), and returns it, an Env on it, and the identities of its users.
func Locked(t *testing.T, service ...string) (*server.Server, *cli.Env, map[cli.Part]cli.Identity) {
	t.Helper()
	users, ids := cli.Lockdown{Service: service}.Users()
	s := testserver.New(t, testserver.WithUsers(users...))
	env := cli.NewEnv("endings", s.ClientURL())
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	return s, env, ids
}

// RunEndings runs each ending's call on a requester connection of its
// own (env's, as the requester of ids, on s), and requires that it ends as
// it should (with the error it wraps; within CloseBound if Prompt), and
// that afterwards the requester's subscriptions (nc.NumSubscriptions), the
// server's (NumSubscriptions, read after a flush) and the process's
// goroutines are back where they were before it (polled until
// ReadyTimeout: nats.go and the server end their goroutines on their own
// time).
func RunEndings(t *testing.T, s *server.Server, env *cli.Env, ids map[cli.Part]cli.Identity, endings []Ending) {
	t.Helper()
	for _, e := range endings {
		t.Run(e.Name, func(t *testing.T) {
			goroutines := runtime.NumGoroutine()
			opts := ids[cli.Requester].Options()
			if e.Inbox != "" {
				opts = append(opts, nats.CustomInboxPrefix(e.Inbox))
			}
			nc, err := env.Connect("requester", opts...)
			require.NoError(t, err)
			connected, err := testserver.FootprintOf(s, nc)
			require.NoError(t, err)
			if e.Once != nil {
				e.Once(context.Background(), nc)
			}
			before, err := testserver.FootprintOf(s, nc)
			require.NoError(t, err)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			if e.During != nil {
				go func() {
					select {
					case <-e.Trigger:
						e.During(nc, cancel)
					case <-done:
					}
				}()
			}
			if e.Before != nil {
				e.Before(nc)
			}
			start := time.Now()
			err = e.Call(ctx, nc)
			took := time.Since(start)
			close(done)
			if e.Want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, e.Want)
			}
			if e.Prompt {
				assert.Less(t, took, CloseBound, "the call must end within one round trip, not at its timeout")
			}
			if !nc.IsClosed() {
				RequireFootprint(t, s, nc, before)
				nc.Close()
			}
			// The server drops a closed connection's subscriptions, and the
			// process its goroutines, on their own time: what Once made too.
			RequireFootprint(t, s, nc, testserver.Footprint{Client: 0, Server: connected.Server, Goroutines: goroutines})
		})
	}
}

// RequestFunc makes one request to the subject prefix+token (prefix as
// given to RequestEndings) on nc, waiting at most timeout or until ctx
// ends, and returns its error: a program's request call (Greet, Ask) or
// denials.Request itself.
type RequestFunc func(ctx context.Context, nc *nats.Conn, token string, timeout time.Duration) error

// RequestEndings runs request (see RunEndings) once for each way a request
// can end: answered, no responders, timed out, cancelled, its connection
// closed during the wait, refused up front (a bad subject; a connection
// closed before the call) and denied (an inbox its user may not subscribe
// to), on a locked-down embedded nats-server serving prefix+"*". A close,
// a cancel or a denial must end it within CloseBound, not at its 10 s
// timeout, and each must leave nothing behind beyond what the connection's
// first request made (see Ending.Once).
func RequestEndings(t *testing.T, prefix string, request RequestFunc) {
	t.Helper()
	s, env, ids := Locked(t, prefix+"*")
	svc, err := env.Connect("service", ids[cli.Responder].Options()...)
	require.NoError(t, err)
	held := make(chan struct{}, 1)
	serve := map[string]nats.MsgHandler{
		"answer": func(m *nats.Msg) { _ = m.Respond([]byte("ok")) },
		"silent": func(*nats.Msg) {},                     // never answers
		"hold":   func(*nats.Msg) { held <- struct{}{} }, // never answers, and says it has the request
	}
	for token, handler := range serve {
		_, err := svc.Subscribe(prefix+token, handler)
		require.NoError(t, err)
	}
	require.NoError(t, svc.Flush())

	call := func(token string, timeout time.Duration) func(context.Context, *nats.Conn) error {
		return func(ctx context.Context, nc *nats.Conn) error { return request(ctx, nc, token, timeout) }
	}
	const timeout = 10 * time.Second
	closeIt := func(nc *nats.Conn, _ context.CancelFunc) { nc.Close() }
	cancelIt := func(_ *nats.Conn, cancel context.CancelFunc) { cancel() }
	endings := []Ending{
		{Name: "answered", Call: call("answer", timeout)},
		{Name: "no responders", Call: call("nobody", timeout), Want: nats.ErrNoResponders},
		{Name: "timed out", Call: call("silent", 50*time.Millisecond), Want: context.DeadlineExceeded},
		{Name: "cancelled", Call: call("hold", timeout), During: cancelIt, Trigger: held, Want: context.Canceled, Prompt: true},
		{Name: "connection closed during the wait", Call: call("hold", timeout), During: closeIt, Trigger: held,
			Want: nats.ErrConnectionClosed, Prompt: true},
		{Name: "refused: bad subject", Call: call("bad token", timeout), Want: nats.ErrBadSubject},
		{Name: "refused: connection closed before", Call: call("answer", timeout), Before: (*nats.Conn).Close,
			Want: nats.ErrConnectionClosed},
		{Name: "denied: inbox", Call: call("answer", timeout), Inbox: "_INBOX", Want: nats.ErrPermissionViolation, Prompt: true},
	}
	// The footprint is read after one request on the connection (answered,
	// or denied with the denied inbox): what nats.go's own request makes
	// once per connection is not what a request leaves behind.
	for i := range endings {
		endings[i].Once = func(ctx context.Context, nc *nats.Conn) { _ = request(ctx, nc, "answer", timeout) }
	}
	RunEndings(t, s, env, ids, endings)
}

// RequireFootprint waits (testserver.SettleFootprint) until nc's
// Footprint on s is back at want (the same subscriptions on the client and
// the server, at most want's goroutines), or fails after
// testserver.ReadyTimeout showing the last one read.
func RequireFootprint(t *testing.T, s *server.Server, nc *nats.Conn, want testserver.Footprint) {
	t.Helper()
	// Goroutines may end below the start: one of an earlier test (a
	// connection's, a server's) may end meanwhile, on its own time.
	back := func(f testserver.Footprint) bool {
		return f.Client == want.Client && f.Server == want.Server && f.Goroutines <= want.Goroutines
	}
	got, err := testserver.SettleFootprint(s, nc, back)
	require.NoError(t, err)
	require.Truef(t, back(got), "the requester's subscriptions, the server's and the goroutines must be back where they started: started at %+v, ended at %+v", want, got)
}

package gather_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/gather"
	"reqreply/gather/natsextgather"
	"reqreply/internal/cli"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
)

// deniedServer starts a server with three users: "svc" may do anything,
// "nosub" may not subscribe to inboxes, "nopub" may not publish to
// "secret". It returns a URL maker for a user.
func deniedServer(t *testing.T) func(user string) string {
	t.Helper()
	_, url := deniedServerAt(t)
	return url
}

// deniedServerAt is deniedServer that also returns the server.
func deniedServerAt(t *testing.T) (*server.Server, func(user string) string) {
	t.Helper()
	users := []*server.User{
		{Username: "svc", Password: "svc"},
		{Username: "nosub", Password: "nosub", Permissions: &server.Permissions{
			Subscribe: &server.SubjectPermission{Deny: []string{"_INBOX.>"}},
		}},
		{Username: "nopub", Password: "nopub", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Deny: []string{"secret"}},
		}},
	}
	s := testserver.New(t, testserver.WithUsers(users...))
	return s, func(user string) string {
		return "nats://" + user + ":" + user + "@" + strings.TrimPrefix(s.ClientURL(), "nats://")
	}
}

// errorLog is a connection's async error handler that keeps what it gets.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// A user who may not subscribe to the inbox prefix gets an error from
// NewMux that wraps nats.ErrPermissionViolation and names "<inbox>.*",
// instead of gathers that all end at their deadline with no reply.
func TestNewMuxSubscribeDenied(t *testing.T) {
	url := deniedServer(t)
	nc, err := nats.Connect(url("nosub"), nats.Name("requester"))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
	require.Error(t, err)
	assert.Nil(t, m)
	assert.ErrorIs(t, err, nats.ErrPermissionViolation)
	assert.ErrorIs(t, err, denials.ErrDenied)
	assert.Contains(t, err.Error(), `Subscription to "_INBOX.`)
	assert.Contains(t, err.Error(), `.*"`)
}

// A gather whose request publish is denied ends with StopFailed and an
// error wrapping nats.ErrPermissionViolation that names the subject,
// rather than at its deadline (a minute here: a gather that waited for it
// would end StopDeadline with no error). The Mux claims the violation: nc's
// error handler does not get it, so it is reported once. Gathers on other
// subjects, at the same time and after, are not touched.
func TestSharedPublishDenied(t *testing.T) {
	url := deniedServer(t)
	rnc, err := nats.Connect(url("svc"), nats.Name("responders"))
	require.NoError(t, err)
	t.Cleanup(rnc.Close)
	for _, subject := range []string{"secret", "open"} {
		_, err := rnc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
		require.NoError(t, err)
	}
	require.NoError(t, rnc.Flush())

	forms := []struct {
		name   string
		gather func(v gather.Variant, subject string, opts ...gather.Option) (gather.Result, error)
	}{
		{"Gather", func(v gather.Variant, subject string, opts ...gather.Option) (gather.Result, error) {
			return gather.Gather(context.Background(), v, subject, nil, opts...)
		}},
		{"Stream", func(v gather.Variant, subject string, opts ...gather.Option) (gather.Result, error) {
			s, err := v.Stream(context.Background(), subject, nil, opts...)
			if err != nil {
				return gather.Result{}, err
			}
			return gather.Collect(s)
		}},
	}
	for _, tc := range forms {
		t.Run(tc.name, func(t *testing.T) {
			var log errorLog
			nc, err := nats.Connect(url("nopub"), nats.Name("requester"), nats.ErrorHandler(log.handler))
			require.NoError(t, err)
			t.Cleanup(nc.Close)
			m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
			require.NoError(t, err)
			t.Cleanup(func() { _ = m.Close() })

			// A denied gather and an allowed one at the same time.
			open := make(chan error, 1)
			go func() {
				res, err := tc.gather(m, "open", gather.Timeout(time.Minute), gather.MaxReplies(1))
				if err == nil && res.Count != 1 {
					err = assert.AnError
				}
				open <- err
			}()
			res, err := tc.gather(m, "secret", gather.Timeout(time.Minute))
			require.Error(t, err)
			assert.ErrorIs(t, err, nats.ErrPermissionViolation)
			assert.ErrorIs(t, err, denials.ErrDenied)
			assert.Contains(t, err.Error(), `Publish to "secret"`)
			assert.Equal(t, gather.StopFailed, res.Reason)
			assert.Zero(t, res.Count)
			require.NoError(t, <-open)

			// The Mux still works, and the violation reached nc's handler
			// neither before nor after (the flush: every -ERR is in).
			res, err = tc.gather(m, "open", gather.Timeout(time.Minute), gather.MaxReplies(1))
			require.NoError(t, err)
			assert.Equal(t, 1, res.Count)
			require.NoError(t, m.RC().Flush())
			for _, e := range log.all() {
				assert.NotContains(t, e.Error(), `"secret"`, "reported twice")
			}
			assert.Zero(t, m.InFlight(), "tokens left behind")
		})
	}
}

// A violation on rc that is not a gather's (nobody publishing on that
// subject any more) still reaches nc's error handler: the Mux claims only
// its own.
func TestSharedUnclaimedViolationPassedOn(t *testing.T) {
	url := deniedServer(t)
	got := make(chan error, 4)
	nc, err := nats.Connect(url("nopub"), nats.Name("requester"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		got <- err
	}))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	require.NoError(t, m.RC().Publish("secret", nil))
	require.NoError(t, m.RC().Flush())
	select {
	case err = <-got:
	case <-time.After(time.Minute):
		t.Fatal("the violation never reached nc's error handler")
	}
	assert.ErrorIs(t, err, nats.ErrPermissionViolation)
	assert.Contains(t, err.Error(), `Publish to "secret"`)
}

// A caller that passes its own error handler, at connect or with
// nc.SetErrorHandler after (here: after the variant is made, so the Mux,
// made before, must follow it), still gets every gather the server denies
// ended within about one round trip with an error wrapping
// nats.ErrPermissionViolation, never a silent deadline, in every variant;
// and its handler still sees the errors that are nobody's (for the Mux: a
// denial on its connection that no running gather claims).
func TestOwnErrorHandlerKeepsDenialsPrompt(t *testing.T) {
	const timeout = 10 * time.Second
	tests := []struct {
		name    string
		user    string // "nopub" may not publish to "secret", "nosub" may not subscribe to inboxes
		subject string
		denied  string // in the error
	}{
		{name: "publish", user: "nopub", subject: "secret", denied: `Publish to "secret"`},
		{name: "inbox", user: "nosub", subject: "open", denied: `Subscription to "_INBOX.`},
	}
	for _, tc := range tests {
		for _, after := range []bool{false, true} {
			for _, name := range variants.Names {
				way := "at connect"
				if after {
					way = "set after"
				}
				t.Run(tc.name+"/"+way+"/variant="+name, func(t *testing.T) {
					_, url := deniedServerAt(t)
					svc := cli.NewEnv("multireply", url("svc"))
					t.Cleanup(func() { _ = svc.Close() })
					echoN(1)(t, connect(t, svc, "responders"), "open")
					env := cli.NewEnv("multireply", url(tc.user))
					t.Cleanup(func() { _ = env.Close() })
					var log errorLog
					var opts []nats.Option
					if !after {
						opts = append(opts, nats.ErrorHandler(log.handler))
					}
					nc, err := env.Connect("requester", opts...)
					require.NoError(t, err)
					if after && name == "shared" && tc.user == "nosub" {
						nc.SetErrorHandler(log.handler)
					}
					v, release, err := variants.New(name, nc)
					if name == "shared" && tc.user == "nosub" {
						// The Mux subscribes its inbox when it is made: refused then.
						require.ErrorIs(t, err, nats.ErrPermissionViolation)
						assert.Contains(t, err.Error(), tc.denied)
						return
					}
					require.NoError(t, err)
					defer func() { _ = release() }()
					if after {
						nc.SetErrorHandler(log.handler)
					}

					start := time.Now()
					res, err := gather.Gather(context.Background(), v, tc.subject, nil, gather.Timeout(timeout))
					assert.Less(t, time.Since(start), 2*time.Second, "ended at about the deadline (%v), not at the denial", timeout)
					require.ErrorIs(t, err, nats.ErrPermissionViolation)
					assert.ErrorIs(t, err, denials.ErrDenied)
					assert.Contains(t, err.Error(), tc.denied)
					assert.Equal(t, gather.StopFailed, res.Reason)

					// A violation that is nobody's still reaches the caller's
					// handler: on the connection that publishes the requests.
					rx := receiver(v, nc)
					require.NoError(t, rx.Publish("secret", nil))
					require.NoError(t, rx.Flush())
					testserver.Settle(func() bool { return len(log.all()) > 0 })
					require.NotEmpty(t, log.all(), "the caller's handler saw nothing")
					assert.ErrorIs(t, log.all()[len(log.all())-1], nats.ErrPermissionViolation)
				})
			}
		}
	}
}

// Prompt denials are opt-in: a variant given no Denials hook, whose
// request's publish the server denies, ends as plain nats.go would, at its
// deadline with no reply and no error, and the violation goes to the
// connection's own error handler.
func TestWithoutDenialsEndsAtDeadline(t *testing.T) {
	url := deniedServer(t)
	for _, name := range variants.Names {
		t.Run("variant="+name, func(t *testing.T) {
			var log errorLog
			nc, err := nats.Connect(url("nopub"), nats.ErrorHandler(log.handler))
			require.NoError(t, err)
			t.Cleanup(nc.Close)
			var v gather.Variant
			switch name {
			case "inbox":
				v = gather.Inbox{Conn: nc}
			case "natsext":
				v = natsextgather.Natsext{Conn: nc}
			case "shared":
				m, err := gather.NewMux(nc)
				require.NoError(t, err)
				t.Cleanup(func() { _ = m.Close() })
				v = m
			}
			res, err := gather.Gather(context.Background(), v, "secret", nil, gather.Timeout(300*time.Millisecond))
			require.NoError(t, err)
			assert.Equal(t, gather.StopDeadline, res.Reason)
			assert.Zero(t, res.Count)
			require.Eventually(t, func() bool {
				for _, e := range log.all() {
					if errors.Is(e, nats.ErrPermissionViolation) {
						return true
					}
				}
				return false
			}, 10*time.Second, time.Millisecond, "the violation reaches nc's error handler")
		})
	}
}

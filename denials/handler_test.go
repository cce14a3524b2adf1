package denials_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
)

// errorLog is a caller's own error handler: it keeps every error it is
// handed, and nothing else (it does not call Claimed: the dispatcher must
// work without the caller's help).
type errorLog struct {
	mu   sync.Mutex
	nc   *nats.Conn
	errs []error
}

func (l *errorLog) handle(nc *nats.Conn, _ *nats.Subscription, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nc = nc
	l.errs = append(l.errs, err)
}

// seen reports how many of the errors handed so far are violations that
// name subject, and how many of those Claimed says a call returned.
func (l *errorLog) seen(subject string) (n, claimed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.errs {
		if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
			n++
			if denials.Claimed(l.nc, err) {
				claimed++
			}
		}
	}
	return n, claimed
}

// A caller's own error handler, set at connect or later (before or after a
// first request, replacing the Env's or chaining to it), keeps denials
// prompt: a denied Request ends with its denial within one round trip,
// not at its deadline, and a Watch is called. The caller's handler
// still sees every error, the claimed violation too (Claimed says so), and
// a handler that chains to the one it replaced hands the violation to one
// waiter, once; nothing is printed.
func TestOwnErrorHandlerKeepsDenialsPrompt(t *testing.T) {
	const timeout = 10 * time.Second
	ways := []struct {
		name string
		// set installs log's handler on nc (connect options, or after);
		// first is the call to make before setting it, if any.
		opts  func(log *errorLog) []nats.Option
		set   func(nc *nats.Conn, log *errorLog)
		first bool
	}{
		{name: "at connect", opts: func(log *errorLog) []nats.Option { return []nats.Option{nats.ErrorHandler(log.handle)} }},
		{name: "set before the first call", set: func(nc *nats.Conn, log *errorLog) { nc.SetErrorHandler(log.handle) }},
		{name: "set after a first call", set: func(nc *nats.Conn, log *errorLog) { nc.SetErrorHandler(log.handle) }, first: true},
		{name: "set after a first call, chaining", first: true, set: func(nc *nats.Conn, log *errorLog) {
			prev := nc.ErrorHandler()
			nc.SetErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
				log.handle(c, s, err)
				prev(c, s, err)
			})
		}},
	}
	calls := []struct {
		name    string
		part    cli.Part
		subject string // the denied publish
		call    func(t *testing.T, nc *nats.Conn, subject string) error
	}{
		{name: "Request", part: cli.Requester, subject: "forbidden", call: func(t *testing.T, nc *nats.Conn, subject string) error {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			_, err := denials.Request(ctx, nc, nats.NewMsg(subject))
			return err
		}},
		{name: "WatchDenials", part: cli.Responder, subject: "elsewhere", call: func(t *testing.T, nc *nats.Conn, subject string) error {
			// Two watches of one subject, two denied publishes: the first
			// watch gets the first violation, the second the second.
			first, second := make(chan error, 1), make(chan error, 1)
			stop1 := denials.Watch(nc, func(err error) { first <- err }, []string{subject}, nil)
			defer stop1()
			stop2 := denials.Watch(nc, func(err error) { second <- err }, []string{subject}, nil)
			defer stop2()
			require.NoError(t, nc.Publish(subject, nil))
			select {
			case err := <-first:
				require.NoError(t, nc.Publish(subject, nil))
				select {
				case again := <-second:
					// Not the first violation handed on a second time.
					one, two := denials.ViolationOf(err), denials.ViolationOf(again)
					require.NotNil(t, one)
					require.NotNil(t, two)
					assert.NotSame(t, one, two, "one violation, one watch")
				case <-time.After(timeout):
					t.Error("the second watch never got the second violation")
				}
				return err
			case <-time.After(timeout):
				return context.DeadlineExceeded
			}
		}},
	}
	for _, call := range calls {
		for _, way := range ways {
			t.Run(call.name+"/"+way.name, func(t *testing.T) {
				env, stderr := clitest.SecureEnv(t)
				log := &errorLog{}
				var opts []nats.Option
				if way.opts != nil {
					opts = way.opts(log)
				}
				nc, err := env.ConnectAs(call.part, call.name, opts...)
				require.NoError(t, err)
				if way.first {
					require.Error(t, call.call(t, nc, call.subject+".first"))
				}
				if way.set != nil {
					way.set(nc, log)
				}

				start := time.Now()
				err = call.call(t, nc, call.subject)
				clitest.RequireDenied(t, err, call.subject)
				assert.Less(t, time.Since(start), 2*time.Second, "the denial must end the call, not its %v timeout", timeout)

				// The caller's handler sees the violation (after the call:
				// nats.go runs handlers on a goroutine of its own), and
				// Claimed says a call returned it.
				require.Eventually(t, func() bool { n, _ := log.seen(call.subject); return n >= 1 },
					timeout, time.Millisecond, "the caller's handler sees every error")
				n, claimed := log.seen(call.subject)
				assert.Equal(t, n, claimed, "a violation a call returned is Claimed")
				require.NoError(t, nc.Flush())
				assert.NotContains(t, stderr.String(), "iolation", "each denial is the call's error, not also printed")
			})
		}
	}
}

package hedge_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/denials"
	"reqreply/hedge"
	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
	"reqreply/respond"
)

// TestTimeoutHeaderFormat: SetBudget writes the budget in gRPC's
// grpc-timeout format, rounded up to the finest unit that fits in 8
// digits, and DeadlineAt reads it back; what does not parse is refused
// with ErrBadDeadline.
func TestTimeoutHeaderFormat(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		budget time.Duration
		header string
		read   time.Duration
	}{
		{0, "0n", 0},
		{-time.Second, "0n", 0},
		{time.Nanosecond, "1n", time.Nanosecond},
		{99_999_999 * time.Nanosecond, "99999999n", 99_999_999 * time.Nanosecond},
		{100 * time.Millisecond, "100000u", 100 * time.Millisecond},
		{250*time.Millisecond + time.Nanosecond, "250001u", 250001 * time.Microsecond},
		{2 * time.Minute, "120000m", 2 * time.Minute},
		{48 * time.Hour, "172800S", 48 * time.Hour},
		{time.Duration(1<<63 - 1), "2562048H", 2562047 * time.Hour}, // the longest Duration, clamped on reading
	}
	for _, tc := range tests {
		t.Run(tc.header, func(t *testing.T) {
			msg := nats.NewMsg("svc")
			hedge.SetBudget(msg, now.Add(tc.budget), now)
			assert.Equal(t, tc.header, msg.Header.Get(hedge.TimeoutHeader))
			msg.Header.Del(hedge.DeadlineHeader)
			got, ok, err := hedge.DeadlineAt(msg.Header, now)
			require.NoError(t, err)
			require.True(t, ok)
			if tc.header != "2562048H" {
				assert.Equal(t, tc.read, got.Sub(now))
			}
		})
	}
	for _, bad := range []string{"m", "12", "1x", "123456789m", "-1m", "+1m", "1.5S", "1 m"} {
		t.Run("refused "+bad, func(t *testing.T) {
			h := nats.Header{hedge.TimeoutHeader: {bad}}
			_, ok, err := hedge.DeadlineAt(h, now)
			require.ErrorIs(t, err, hedge.ErrBadDeadline)
			assert.False(t, ok)
		})
	}
}

// TestDeadlineAtWhichWins: with both headers, the earlier of the absolute
// deadline and the budget counted from the moment of reading wins.
func TestDeadlineAtWhichWins(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	abs := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	tests := []struct {
		name   string
		header nats.Header
		want   time.Duration // from now
		ok     bool
		bad    bool
	}{
		{name: "neither"},
		{name: "absolute only", header: nats.Header{hedge.DeadlineHeader: {abs(time.Second)}}, want: time.Second, ok: true},
		{name: "budget only", header: nats.Header{hedge.TimeoutHeader: {"300m"}}, want: 300 * time.Millisecond, ok: true},
		{name: "absolute earlier: the request waited in a queue", header: nats.Header{
			hedge.DeadlineHeader: {abs(100 * time.Millisecond)}, hedge.TimeoutHeader: {"300m"}}, want: 100 * time.Millisecond, ok: true},
		{name: "budget earlier: the caller's clock runs ahead", header: nats.Header{
			hedge.DeadlineHeader: {abs(time.Hour)}, hedge.TimeoutHeader: {"300m"}}, want: 300 * time.Millisecond, ok: true},
		{name: "bad absolute", header: nats.Header{hedge.DeadlineHeader: {"tomorrow"}, hedge.TimeoutHeader: {"300m"}}, bad: true},
		{name: "bad budget", header: nats.Header{hedge.DeadlineHeader: {abs(time.Second)}, hedge.TimeoutHeader: {"soon"}}, bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := hedge.DeadlineAt(tc.header, now)
			if tc.bad {
				require.ErrorIs(t, err, hedge.ErrBadDeadline)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.ok, ok)
			if ok {
				assert.Equal(t, tc.want, got.Sub(now))
			}
		})
	}
}

// handlerKind is one of the two handlers the middleware wraps, subscribed
// on nc at subject: a plain nats.MsgHandler (DeadlineHandler) or a micro
// endpoint (DeadlineMicroHandler). The handler h answers with what it
// returns.
type handlerKind struct {
	name  string
	serve func(t *testing.T, nc *nats.Conn, subject string, h func(context.Context) string)
}

var handlerKinds = []handlerKind{
	{"plain", func(t *testing.T, nc *nats.Conn, subject string, h func(context.Context) string) {
		sub, err := nc.Subscribe(subject, hedge.DeadlineHandler(context.Background(), func(ctx context.Context, m *nats.Msg) {
			_ = m.Respond([]byte(h(ctx)))
		}))
		require.NoError(t, err)
		t.Cleanup(func() { _ = sub.Unsubscribe() })
		require.NoError(t, nc.Flush())
	}},
	{"micro", func(t *testing.T, nc *nats.Conn, subject string, h func(context.Context) string) {
		svc, err := micro.AddService(nc, micro.Config{Name: "deadline", Version: "1.0.0",
			Endpoint: &micro.EndpointConfig{Subject: subject, Handler: hedge.DeadlineMicroHandler(context.Background(),
				func(ctx context.Context, req micro.Request) { _ = req.Respond([]byte(h(ctx))) })}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = svc.Stop() })
		require.NoError(t, nc.Flush())
	}},
}

// connect returns a connection to a server of the test's own, and the server.
func connect(t *testing.T) (*nats.Conn, *nats.Conn) {
	t.Helper()
	s := testserver.New(t)
	svc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return svc, nc
}

// requireErrorReply requires that reply is an error reply (respond.ErrorOf)
// with code and a description.
func requireErrorReply(t *testing.T, reply *nats.Msg, code string) {
	t.Helper()
	var serr *respond.ServiceError
	require.ErrorAs(t, respond.ErrorOf(reply), &serr)
	assert.Equal(t, code, serr.Code)
	assert.NotEmpty(t, serr.Description)
}

// TestDeadlineMiddleware: for both handler kinds, the handler gets a
// context that ends at the request's deadline (none without one); a request
// already expired, or with a malformed header, gets an error reply with
// ExpiredCode or BadDeadlineCode and the handler never runs.
func TestDeadlineMiddleware(t *testing.T) {
	tests := []struct {
		name string
		set  func(msg *nats.Msg, now time.Time)
		ran  bool
		code string
	}{
		{name: "no deadline", set: func(*nats.Msg, time.Time) {}, ran: true},
		{name: "budget", set: func(m *nats.Msg, now time.Time) { hedge.SetBudget(m, now.Add(time.Minute), now) }, ran: true},
		{name: "absolute only", set: func(m *nats.Msg, now time.Time) { hedge.SetDeadline(m, now.Add(time.Minute)) }, ran: true},
		{name: "expired", set: func(m *nats.Msg, now time.Time) { hedge.SetBudget(m, now.Add(-time.Second), now) }, code: hedge.ExpiredCode},
		{name: "expired budget", set: func(m *nats.Msg, _ time.Time) { m.Header.Set(hedge.TimeoutHeader, "0n") }, code: hedge.ExpiredCode},
		{name: "malformed", set: func(m *nats.Msg, _ time.Time) { m.Header.Set(hedge.DeadlineHeader, "tomorrow") }, code: hedge.BadDeadlineCode},
		// As a gateway writes them (TestDeadlineHeaderVariants): lowercase, or a second value.
		{name: "lowercase budget", set: func(m *nats.Msg, _ time.Time) { m.Header["request-timeout"] = []string{"30S"} }, ran: true},
		{name: "lowercase budget spent", set: func(m *nats.Msg, _ time.Time) { m.Header["request-timeout"] = []string{"0n"} }, code: hedge.ExpiredCode},
		{name: "uppercase absolute passed", set: func(m *nats.Msg, now time.Time) {
			m.Header["REQUEST-DEADLINE"] = []string{now.Add(-time.Second).UTC().Format(time.RFC3339Nano)}
		}, code: hedge.ExpiredCode},
		{name: "second value passed", set: func(m *nats.Msg, now time.Time) {
			hedge.SetDeadline(m, now.Add(time.Minute))
			m.Header.Add(hedge.DeadlineHeader, now.Add(-time.Second).UTC().Format(time.RFC3339Nano))
		}, code: hedge.ExpiredCode},
		{name: "lowercase malformed", set: func(m *nats.Msg, _ time.Time) { m.Header["request-timeout"] = []string{"99999999h"} }, code: hedge.BadDeadlineCode},
	}
	for _, kind := range handlerKinds {
		t.Run(kind.name, func(t *testing.T) {
			svc, nc := connect(t)
			ran := make(chan time.Time, 1)
			kind.serve(t, svc, "svc", func(ctx context.Context) string {
				d, _ := ctx.Deadline()
				ran <- d
				return "ok"
			})
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					msg := nats.NewMsg("svc")
					now := time.Now()
					tc.set(msg, now)
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					reply, err := nc.RequestMsgWithContext(ctx, msg)
					require.NoError(t, err)
					if !tc.ran {
						requireErrorReply(t, reply, tc.code)
						select {
						case <-ran:
							t.Fatal("the handler ran for a request it must not run")
						default:
						}
						return
					}
					require.NoError(t, respond.ErrorOf(reply))
					d := <-ran
					if _, ok, _ := hedge.DeadlineAt(msg.Header, now); ok {
						require.False(t, d.IsZero(), "the handler's context has the request's deadline")
						assert.False(t, d.After(now.Add(time.Minute)))
					} else {
						assert.True(t, d.IsZero(), "no deadline carried, none given")
					}
				})
			}
		})
	}
}

// TestDeadlineAcrossHop: A's handler calls B with its own context
// (SetContextDeadline, then nats.go's RequestMsgWithContext); B's context
// ends at A's deadline less the time spent, and once A's caller gives up
// (its own 50 ms), B's context ends too, with context.DeadlineExceeded, for
// both handler kinds.
func TestDeadlineAcrossHop(t *testing.T) {
	for _, kind := range handlerKinds {
		t.Run(kind.name, func(t *testing.T) {
			svc, nc := connect(t)
			type seen struct {
				deadline time.Time
				err      error
			}
			atA, atB := make(chan time.Time, 1), make(chan seen, 1)
			kind.serve(t, svc, "b", func(ctx context.Context) string {
				d, _ := ctx.Deadline()
				<-ctx.Done() // work until the caller's budget is spent
				atB <- seen{d, ctx.Err()}
				return "late"
			})
			kind.serve(t, svc, "a", func(ctx context.Context) string {
				d, _ := ctx.Deadline()
				atA <- d
				msg := nats.NewMsg("b")
				require.True(t, hedge.SetContextDeadline(ctx, msg))
				reply, err := svc.RequestMsgWithContext(ctx, msg)
				if err != nil {
					return err.Error()
				}
				return string(reply.Data)
			})

			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			msg := nats.NewMsg("a")
			require.True(t, hedge.SetContextDeadline(ctx, msg))
			// A's and B's deadline is the caller's: a reply may just make it.
			if _, err := nc.RequestMsgWithContext(ctx, msg); err != nil {
				require.ErrorIs(t, err, context.DeadlineExceeded)
			}
			callerDeadline, _ := ctx.Deadline()

			dA := <-atA
			b := <-atB
			require.ErrorIs(t, b.err, context.DeadlineExceeded, "B stops when A's caller gives up")
			assert.False(t, dA.After(callerDeadline), "A's deadline is its caller's")
			assert.False(t, b.deadline.After(dA), "B's deadline is what A had left")
		})
	}
}

// TestDeadlineClockSkew: a caller whose clock runs an hour ahead writes an
// absolute deadline an hour late; its budget is right and wins, so the
// handler's context ends within the budget. A caller whose clock runs an
// hour behind writes one an hour early, which wins: the request is refused
// as expired (the limit DeadlineAt documents); sending the budget alone
// avoids it.
func TestDeadlineClockSkew(t *testing.T) {
	svc, nc := connect(t)
	ran := make(chan time.Time, 1)
	handlerKinds[0].serve(t, svc, "svc", func(ctx context.Context) string {
		d, _ := ctx.Deadline()
		ran <- d
		return "ok"
	})
	const budget = time.Minute
	tests := []struct {
		name  string
		skew  time.Duration // the caller's clock, less the responder's
		noAbs bool
		ran   bool
	}{
		{name: "caller ahead: absolute late, budget wins", skew: time.Hour, ran: true},
		{name: "caller behind: absolute early, wins, expired", skew: -time.Hour},
		{name: "caller behind, budget alone", skew: -time.Hour, noAbs: true, ran: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := nats.NewMsg("svc")
			callerNow := time.Now().Add(tc.skew)
			hedge.SetBudget(msg, callerNow.Add(budget), callerNow)
			if tc.noAbs {
				msg.Header.Del(hedge.DeadlineHeader)
			}
			sent := time.Now()
			reply, err := nc.RequestMsg(msg, 5*time.Second)
			require.NoError(t, err)
			if !tc.ran {
				requireErrorReply(t, reply, hedge.ExpiredCode)
				return
			}
			require.NoError(t, respond.ErrorOf(reply))
			d := <-ran
			assert.False(t, d.Before(sent.Add(budget)), "the budget counts from receipt, after the send")
			assert.False(t, d.After(time.Now().Add(budget)), "the budget, not the skewed absolute time, ends the handler's context")
		})
	}
}

// TestSetContextDeadline: both headers from the context's deadline, and
// none, with stale ones removed, from a context without one.
func TestSetContextDeadline(t *testing.T) {
	msg := nats.NewMsg("svc")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.True(t, hedge.SetContextDeadline(ctx, msg))
	assert.NotEmpty(t, msg.Header.Get(hedge.DeadlineHeader))
	assert.NotEmpty(t, msg.Header.Get(hedge.TimeoutHeader))
	d, ok, err := hedge.DeadlineOf(msg)
	require.NoError(t, err)
	require.True(t, ok)
	want, _ := ctx.Deadline()
	assert.False(t, d.After(want))
	require.False(t, hedge.SetContextDeadline(context.Background(), msg))
	assert.Empty(t, msg.Header.Get(hedge.DeadlineHeader))
	assert.Empty(t, msg.Header.Get(hedge.TimeoutHeader))
	assert.False(t, hedge.SetContextDeadline(ctx, nil))
}

// However a request with SetContextDeadline and nats.go's own
// RequestMsgWithContext (with denials.Context, as singlereply.Greet) ends (answered, no responders, timed out,
// cancelled, its connection closed or drained during the wait, refused up
// front, denied), it ends on time and leaves nothing behind.
func TestSetContextDeadlineRequestEndings(t *testing.T) {
	request := func(ctx context.Context, nc *nats.Conn, subject string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		msg := nats.NewMsg(subject)
		if !hedge.SetContextDeadline(ctx, msg) {
			return errors.New("no deadline set")
		}
		dctx, stop := denials.Context(ctx, nc, subject) // a denial within one round trip, attached from outside
		defer stop()
		_, err := nc.RequestMsgWithContext(dctx, msg)
		return denials.Err(dctx, err)
	}
	clitest.RequestEndings(t, "svc.", func(ctx context.Context, nc *nats.Conn, token string, timeout time.Duration) error {
		return request(ctx, nc, "svc."+token, timeout)
	})

	t.Run("more", func(t *testing.T) {
		s, env, ids := clitest.Locked(t, "svc.*")
		svc, err := env.Connect("service", ids[cli.Responder].Options()...)
		require.NoError(t, err)
		held := make(chan struct{}, 1)
		_, err = svc.Subscribe("svc.answer", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
		require.NoError(t, err)
		_, err = svc.Subscribe("svc.hold", func(*nats.Msg) { held <- struct{}{} })
		require.NoError(t, err)
		_, err = svc.Subscribe("svc.guarded", hedge.DeadlineHandler(context.Background(), func(context.Context, *nats.Msg) {
			t.Error("the handler ran for an expired request")
		}))
		require.NoError(t, err)
		require.NoError(t, svc.Flush())
		const timeout = 10 * time.Second
		once := func(ctx context.Context, nc *nats.Conn) { _ = request(ctx, nc, "svc.answer", timeout) }
		clitest.RunEndings(t, s, env, ids, []clitest.Ending{
			{Name: "drained during the wait", Call: func(ctx context.Context, nc *nats.Conn) error {
				return request(ctx, nc, "svc.hold", timeout)
			}, During: func(nc *nats.Conn, _ context.CancelFunc) { _ = nc.Drain() }, Trigger: held,
				Want: nats.ErrConnectionClosed, Prompt: true, Once: once},
			{Name: "refused: no message", Call: func(ctx context.Context, nc *nats.Conn) error {
				ctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				require.False(t, hedge.SetContextDeadline(ctx, nil))
				_, err := nc.RequestMsgWithContext(ctx, nil)
				return err
			}, Want: nats.ErrInvalidMsg, Once: once},
			{Name: "expired on arrival: an error reply", Call: func(ctx context.Context, nc *nats.Conn) error {
				ctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				msg := nats.NewMsg("svc.guarded")
				hedge.SetBudget(msg, time.Now().Add(-time.Second), time.Now())
				reply, err := nc.RequestMsgWithContext(ctx, msg)
				if err != nil {
					return err
				}
				var serr *respond.ServiceError
				if !errors.As(respond.ErrorOf(reply), &serr) || serr.Code != hedge.ExpiredCode {
					return fmt.Errorf("want an error reply with code %s, got %q", hedge.ExpiredCode, reply.Data)
				}
				return nil
			}, Once: once},
		})
	})
}

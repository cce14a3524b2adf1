package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
	"reqreply/respond"
)

// A greeter whose handler panics or fails answers with an error reply: the
// requester learns it at once, and the greeter still drains as it should.
func TestGreeterFaults(t *testing.T) {
	tests := []struct {
		name  string
		greet func(string) (string, error)
		want  string
	}{
		{name: "panic", greet: func(string) (string, error) { panic("boom") }, want: "service error 500: handler panicked: boom"},
		{name: "error", greet: func(string) (string, error) { return "", errors.New("no greeting today") }, want: "service error 500: no greeting today"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newEnv(t)
			svc, req := connect(t, env, "service"), connect(t, env, "requester")
			g, err := ServeOnceFunc(svc, tc.greet)
			require.NoError(t, err)
			_, _, err = Ask(context.Background(), req, GreetJoe, time.Minute)
			var serr *respond.ServiceError
			require.ErrorAs(t, err, &serr)
			assert.NotErrorIs(t, err, nats.ErrTimeout)
			assert.Equal(t, tc.want, serr.Error())
			// It survived, answered, and drained: the next request finds
			// nobody.
			require.NoError(t, g.WaitDrained(context.Background()))
			require.NoError(t, svc.Flush())
			_, _, err = Ask(context.Background(), req, GreetJoe, time.Minute)
			assert.ErrorIs(t, err, nats.ErrNoResponders)
		})
	}
}

// Without header support the server sends no 503: the scenario refuses to
// run and says why, and a request nobody serves times out, saying why.
func TestNoHeaderSupport(t *testing.T) {
	s := testserver.New(t, testserver.WithoutHeaders())
	env := cli.NewEnv("noresponders", s.ClientURL())
	t.Cleanup(func() { require.NoError(t, env.Close()) })

	err := Run(context.Background(), env, Config{Timeout: time.Minute}, &bytes.Buffer{})
	assert.ErrorIs(t, err, ErrNoHeaders)
	assert.Contains(t, err.Error(), "the fast no-responders error needs a server with header support")

	req := connect(t, env, "requester")
	require.False(t, s.GlobalAccount().SubscriptionInterest(GreetJoe), "Run started no greeter")
	_, _, err = Ask(context.Background(), req, GreetJoe, 20*time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout)
	assert.NotErrorIs(t, err, nats.ErrNoResponders)
	assert.Contains(t, err.Error(), "the server does not support headers")

	// The -request half checks too.
	err = Run(context.Background(), env, Config{Timeout: time.Minute, Mode: cli.Mode{Request: true}}, &bytes.Buffer{})
	assert.ErrorIs(t, err, ErrNoHeaders)
}

// A responder that replies twice: Ask takes the first, and the duplicate
// never reaches the next request.
func TestResponderRepliesTwice(t *testing.T) {
	env, _ := newEnv(t)
	svc, req := connect(t, env, "service"), connect(t, env, "requester")
	n := 0
	_, err := svc.Subscribe("twice", func(m *nats.Msg) {
		n++
		_ = m.Respond([]byte{byte('0' + n%10)})
		_ = m.Respond([]byte("duplicate"))
	})
	require.NoError(t, err)
	require.NoError(t, svc.Flush())
	for _, want := range []string{"1", "2", "3"} {
		got, _, err := Ask(context.Background(), req, "twice", time.Minute)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
}

// The server restarts while a request waits in the reconnect buffer: the
// request ends within its deadline, answered or failed with no responders
// (if it reaches the server before the greeter's subscription does); with
// the server still down it times out and says the connection was down.
func TestServerRestartMidRequest(t *testing.T) {
	first := testserver.New(t)
	port := first.Addr().(*net.TCPAddr).Port
	env := cli.NewEnv("noresponders", first.ClientURL())
	env.Reconnect = cli.Reconnect{Wait: 10 * time.Millisecond, Max: -1}
	var stderr clitest.Buffer
	env.Stderr = &stderr
	t.Cleanup(func() { _ = env.Close() })
	watch := func(role string) (*nats.Conn, chan struct{}, chan struct{}) {
		down, up := make(chan struct{}, 8), make(chan struct{}, 8)
		nc, err := env.Connect(role,
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					down <- struct{}{}
				}
			}),
			nats.ReconnectHandler(func(*nats.Conn) { up <- struct{}{} }))
		require.NoError(t, err)
		return nc, down, up
	}
	svc, svcDown, svcUp := watch("service")
	_, err := ServeOnce(svc)
	require.NoError(t, err)
	req, down, up := watch("requester")

	testserver.Shutdown(first)
	<-svcDown
	<-down
	// Down for good as far as this request knows: it times out.
	_, _, err = Ask(context.Background(), req, GreetJoe, 20*time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout)
	assert.Contains(t, err.Error(), "(connection reconnecting: the request waited in the reconnect buffer)")

	type result struct {
		reply string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		reply, _, err := Ask(context.Background(), req, GreetJoe, time.Minute)
		done <- result{reply, err}
	}()
	require.Eventually(t, func() bool { n, _ := req.Buffered(); return n > 0 }, time.Minute, time.Millisecond)
	second := testserver.New(t, testserver.WithPort(port))
	got := <-done
	if got.err != nil {
		assert.ErrorIs(t, got.err, nats.ErrNoResponders, "the only other outcome")
	} else {
		assert.Equal(t, "hello, joe", got.reply)
	}
	<-svcUp
	<-up
	assert.Regexp(t, `noresponders requester: reconnected to nats://127\.0\.0\.1:\d+`, stderr.String())
	assert.Equal(t, second.ClientURL(), first.ClientURL())
}

// The -serve half, whose server goes away for good (-max-reconnects 0),
// exits 1 and says why.
func TestServeExitsWhenConnectionLost(t *testing.T) {
	s := testserver.New(t)
	var cfg Config
	fs, check := flags(&cfg)
	out := clitest.NewFirstWrite()
	var stderr clitest.Buffer
	getenv := func(k string) string {
		if k == "NATS_URL" {
			return s.ClientURL()
		}
		return ""
	}
	code := make(chan int, 1)
	go func() {
		code <- cli.Exec(fs, []string{"-serve", "-max-reconnects", "0"}, check, func(ctx context.Context, env *cli.Env) error {
			return Run(ctx, env, cfg, out)
		}, getenv, &stderr)
	}()
	<-out.Ready
	testserver.Shutdown(s)
	assert.Equal(t, cli.ExitFailure, <-code)
	assert.Regexp(t, `(?m)^\S+ noresponders service: connection closed for good: .+$`, stderr.String())
}

// FuzzAskSubject: any subject is either refused before anything is sent
// (nats.ErrBadSubject) or sent, and then, since nobody serves it, fails at
// once with no responders; the connection stays usable either way.
func FuzzAskSubject(f *testing.F) {
	for _, seed := range []string{GreetJoe, "", "a..b", ".a", "a.", "*", "a.>", "a b", "a\tb", "zoë.joe", "a*b", "\x00", "a.\x7f"} {
		f.Add(seed)
	}
	s := testserver.New(f)
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(f, err)
	f.Cleanup(nc.Close)
	f.Fuzz(func(t *testing.T, subject string) {
		_, _, err := Ask(context.Background(), nc, subject, time.Minute)
		if respond.CheckSubject(subject) != nil {
			require.ErrorIs(t, err, nats.ErrBadSubject)
		} else {
			require.ErrorIs(t, err, nats.ErrNoResponders, "subject %q", subject)
		}
		require.True(t, nc.IsConnected(), "subject %q broke the connection", subject)
	})
}

// However an Ask ends, it ends on time (a close or a cancel during the
// wait within one round trip) and leaves nothing behind: no subscription
// on the client or the server (a no-responders status too), no goroutine.
func TestAskEndingsLeaveNothing(t *testing.T) {
	clitest.RequestEndings(t, "greet.", func(ctx context.Context, nc *nats.Conn, token string, timeout time.Duration) error {
		_, _, err := Ask(ctx, nc, "greet."+token, timeout)
		return err
	})
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
	"reqreply/respond"
)

// A handler that panics or fails: the greeter survives, and the requester
// gets an error reply at once instead of a timeout. On a server without
// header support no error reply can be sent: the request times out and the
// error says why.
func TestGreeterFaults(t *testing.T) {
	greet := func(name string) (string, error) {
		switch name {
		case "panic":
			panic("boom")
		case "fail":
			return "", errors.New("no greeting today")
		case "teapot":
			return "", &respond.ServiceError{Code: "418", Description: "I'm a teapot"}
		}
		return Greeting(name)
	}
	tests := []struct {
		name      string
		noHeaders bool
		who       string
		want      string
		wantErr   []error
		wantText  string // part of the error's message
		failed    string // part of what the greeter reports, "" for nothing
	}{
		{name: "answer", who: "joe", want: "hello, joe"},
		{name: "panic", who: "panic", wantText: "service error 500: handler panicked: boom", failed: "handler panicked: boom"},
		{name: "error", who: "fail", wantText: "service error 500: no greeting today", failed: "no greeting today"},
		{name: "own code", who: "teapot", wantText: "service error 418: I'm a teapot", failed: "service error 418: I'm a teapot"},
		{name: "no headers: answer", noHeaders: true, who: "joe", want: "hello, joe"},
		{name: "no headers: panic", noHeaders: true, who: "panic", wantErr: []error{nats.ErrTimeout},
			wantText: "the server does not support headers", failed: "handler panicked: boom; no error reply sent: nats: headers not supported by this server"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []testserver.Option
			if tc.noHeaders {
				opts = append(opts, testserver.WithoutHeaders())
			}
			s := testserver.New(t, opts...)
			env := cli.NewEnv("singlereply", s.ClientURL())
			t.Cleanup(func() { require.NoError(t, env.Close()) })
			svc, err := env.Connect("service")
			require.NoError(t, err)
			failed := make(chan string, 1)
			_, err = Greeter{Greet: greet, Failed: func(subject string, err error) { failed <- subject + ": " + err.Error() }}.Serve(svc)
			require.NoError(t, err)
			nc, err := env.Connect("requester")
			require.NoError(t, err)

			timeout := time.Minute // an error reply must not wait it out
			if tc.noHeaders && tc.want == "" {
				timeout = 50 * time.Millisecond
			}
			got, err := Greet(context.Background(), nc, tc.who, timeout)
			if tc.want != "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
			} else {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantText)
				for _, want := range tc.wantErr {
					assert.ErrorIs(t, err, want)
				}
				if len(tc.wantErr) == 0 {
					var serr *respond.ServiceError
					assert.ErrorAs(t, err, &serr)
					assert.NotErrorIs(t, err, nats.ErrTimeout)
				}
			}
			if tc.failed != "" {
				assert.Contains(t, <-failed, "greet."+tc.who+": "+tc.failed)
			}
			// The greeter survived: the next request is answered.
			got, err = Greet(context.Background(), nc, "sue", time.Minute)
			require.NoError(t, err)
			assert.Equal(t, "hello, sue", got)
		})
	}
}

// On a server without header support a request nobody serves gets no 503:
// it times out, and the error says why.
func TestNoRespondersNeedsHeaders(t *testing.T) {
	s := testserver.New(t, testserver.WithoutHeaders())
	env := cli.NewEnv("singlereply", s.ClientURL())
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	_, err = Greet(context.Background(), nc, "joe", 50*time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout)
	assert.NotErrorIs(t, err, nats.ErrNoResponders)
	assert.Contains(t, err.Error(), "nor the no-responders status")
}

// A responder that replies twice: the requester takes the first reply, and
// the duplicate never reaches a later request.
func TestResponderRepliesTwice(t *testing.T) {
	env := newEnv(t)
	svc, err := env.Connect("service")
	require.NoError(t, err)
	_, err = svc.Subscribe(GreetSubjects, func(m *nats.Msg) {
		name := strings.TrimPrefix(m.Subject, greetPrefix)
		_ = m.Respond([]byte("hello, " + name))
		_ = m.Respond([]byte("again, " + name))
	})
	require.NoError(t, err)
	require.NoError(t, svc.Flush())
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	for _, name := range []string{"joe", "sue", "bob"} {
		got, err := Greet(context.Background(), nc, name, time.Minute)
		require.NoError(t, err)
		assert.Equal(t, "hello, "+name, got)
	}
}

// restartable is a server that a test can stop and start again on the same
// port, with an Env whose connections retry every 10 ms, forever.
type restartable struct {
	t      *testing.T
	port   int
	server *server.Server
	env    *cli.Env
	stderr *clitest.Buffer
}

func newRestartable(t *testing.T) *restartable {
	s := testserver.New(t)
	r := &restartable{t: t, port: s.Addr().(*net.TCPAddr).Port, server: s, stderr: &clitest.Buffer{}}
	r.env = cli.NewEnv("singlereply", s.ClientURL())
	r.env.Reconnect = cli.Reconnect{Wait: 10 * time.Millisecond, Max: -1}
	r.env.Stderr = r.stderr
	t.Cleanup(func() { _ = r.env.Close() })
	return r
}

func (r *restartable) stop()  { testserver.Shutdown(r.server) }
func (r *restartable) start() { r.server = testserver.New(r.t, testserver.WithPort(r.port)) }

// connect opens a connection whose disconnects and reconnects are sent on
// the returned channels.
func (r *restartable) connect(role string) (*nats.Conn, <-chan struct{}, <-chan struct{}) {
	down, up := make(chan struct{}, 8), make(chan struct{}, 8)
	nc, err := r.env.Connect(role,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				down <- struct{}{}
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { up <- struct{}{} }))
	require.NoError(r.t, err)
	return nc, down, up
}

// A request made while the server is down, and not back within the
// request's timeout, fails with nats.ErrTimeout, saying the connection was
// down; the disconnect was printed when it happened.
func TestGreetWhileDisconnected(t *testing.T) {
	r := newRestartable(t)
	nc, down, _ := r.connect("requester")
	r.stop()
	<-down
	_, err := Greet(context.Background(), nc, "joe", 20*time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout)
	assert.Contains(t, err.Error(), "(connection reconnecting: the request waited in the reconnect buffer)")
	assert.Contains(t, r.stderr.String(), "singlereply requester: disconnected from nats://127.0.0.1:")
}

// The server restarts while a request waits in the reconnect buffer. The
// request ends within its deadline either way: answered, when the greeter
// has subscribed again before the buffered request reaches the server, or
// failed with no responders, when the request gets there first. Once both
// connections are back, requests are answered again.
func TestServerRestartMidRequest(t *testing.T) {
	r := newRestartable(t)
	svc, svcDown, svcUp := r.connect("service")
	_, err := ServeGreeter(svc)
	require.NoError(t, err)
	nc, down, up := r.connect("requester")

	r.stop()
	<-svcDown
	<-down
	type result struct {
		reply string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		reply, err := Greet(context.Background(), nc, "joe", time.Minute)
		done <- result{reply, err}
	}()
	// The request is in the reconnect buffer (the client's own state).
	require.Eventually(t, func() bool { n, _ := nc.Buffered(); return n > 0 }, time.Minute, time.Millisecond)
	r.start()
	got := <-done
	if got.err != nil {
		assert.ErrorIs(t, got.err, nats.ErrNoResponders, "the only other outcome")
	} else {
		assert.Equal(t, "hello, joe", got.reply)
	}
	<-svcUp
	<-up
	// The greeter's subscription was sent again on reconnect; its flush
	// proves the server has it.
	require.NoError(t, svc.Flush())
	reply, err := Greet(context.Background(), nc, "sue", time.Minute)
	require.NoError(t, err)
	assert.Equal(t, "hello, sue", reply)
	assert.Regexp(t, `singlereply service: reconnected to nats://127\.0\.0\.1:\d+`, r.stderr.String())
}

// A run whose requests fail goes on to the next name and counts the
// failures; errors.Is sees each one.
func TestRunCountsFailures(t *testing.T) {
	env := newEnv(t)
	var out bytes.Buffer
	cfg := Config{Names: DefaultNames, Timeout: time.Minute, Mode: cli.Mode{Request: true}}
	err := Run(context.Background(), env, cfg, &out)
	require.ErrorIs(t, err, nats.ErrNoResponders)
	assert.Equal(t, "3 of 3 requests failed: "+
		`greet "greet.joe": nats: no responders available for request`+"\n"+
		`greet "greet.sue": nats: no responders available for request`+"\n"+
		`greet "greet.bob": nats: no responders available for request`, err.Error())
	assert.Empty(t, out.String())
}

// The program's -serve, whose server goes away for good (-max-reconnects
// 0), exits 1 and says why, instead of serving nothing in silence.
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
	<-out.Ready // serving
	testserver.Shutdown(s)
	assert.Equal(t, cli.ExitFailure, <-code)
	assert.Regexp(t, `(?m)^\S+ singlereply service: connection closed for good: .+$`, stderr.String())
}

// FuzzGreetSubject: any name either makes a valid one-token subject under
// greet. or is refused with nats.ErrBadSubject; never a panic.
func FuzzGreetSubject(f *testing.F) {
	for _, seed := range []string{"joe", "", "a.b", "*", ">", "a b", "zoë", "-joe", "\x00", "a\x1b[31mb", "a\vb", "a\x7f", strings.Repeat("a", MaxNameLen+1)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		subject, err := GreetSubject(name)
		if err != nil {
			require.ErrorIs(t, err, nats.ErrBadSubject)
			assert.Empty(t, subject)
			return
		}
		assert.Equal(t, greetPrefix+name, subject)
		assert.LessOrEqual(t, len(name), MaxNameLen)
		assert.NotEmpty(t, name)
		// One literal token: no separator, no wildcard, no white space
		// (the protocol splits its control line on white space), no
		// control character.
		assert.False(t, strings.ContainsAny(name, ".*>"), "name %q", name)
		assert.False(t, strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }), "name %q", name)
		assert.Equal(t, 2, len(strings.Split(subject, ".")), fmt.Sprintf("subject %q", subject))
	})
}

var _ io.Writer = (*clitest.Buffer)(nil)

// A run with many failed requests names the first few and counts the rest,
// instead of one line as long as every error joined (190 kB for 3,000
// names nobody serves); errors.Is still sees each one.
func TestRunFailuresBounded(t *testing.T) {
	tests := []struct {
		names int
		shown int
		more  string
	}{
		{names: 3, shown: 3},
		{names: MaxFailuresShown, shown: MaxFailuresShown},
		{names: MaxFailuresShown + 1, shown: MaxFailuresShown, more: "and 1 more"},
		{names: 200, shown: MaxFailuresShown, more: fmt.Sprintf("and %d more", 200-MaxFailuresShown)},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.names), func(t *testing.T) {
			env := newEnv(t)
			names := make([]string, tc.names)
			for i := range names {
				names[i] = "n" + strconv.Itoa(i)
			}
			cfg := Config{Names: names, Timeout: time.Minute, Mode: cli.Mode{Request: true}}
			err := Run(context.Background(), env, cfg, io.Discard)
			require.ErrorIs(t, err, nats.ErrNoResponders)
			var joined interface{ Unwrap() []error }
			require.ErrorAs(t, err, &joined)
			assert.Len(t, joined.Unwrap(), tc.names, "every failure stays in the error")
			assert.True(t, strings.HasPrefix(err.Error(), fmt.Sprintf("%d of %d requests failed: ", tc.names, tc.names)), err.Error())
			assert.Equal(t, tc.shown, strings.Count(err.Error(), `greet "greet.n`), err.Error())
			if tc.more != "" {
				assert.True(t, strings.HasSuffix(err.Error(), tc.more), err.Error())
			} else {
				assert.NotContains(t, err.Error(), "more")
			}
		})
	}
}

// However a Greet ends, it ends on time (a close or a cancel during the
// wait within one round trip) and leaves nothing behind: no subscription
// on the client or the server (a no-responders status too), no goroutine.
func TestGreetEndingsLeaveNothing(t *testing.T) {
	clitest.RequestEndings(t, greetPrefix, func(ctx context.Context, nc *nats.Conn, token string, timeout time.Duration) error {
		_, err := Greet(ctx, nc, token, timeout)
		return err
	})
}

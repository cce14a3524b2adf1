package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newEnv starts a fresh embedded server for one test and returns it with an
// Env on it, drained and stopped when the test ends.
func newEnv(t *testing.T) (*cli.Env, *server.Server) {
	t.Helper()
	s := testserver.New(t)
	env := cli.NewEnv("noresponders", s.ClientURL())
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	return env, s
}

// connect opens a connection through env, failing the test if it cannot.
func connect(t *testing.T, env *cli.Env, role string) *nats.Conn {
	t.Helper()
	nc, err := env.Connect(role)
	require.NoError(t, err)
	return nc
}

// elapsed matches the measured durations in Run's output, "after 312µs" or
// "after 2.001s"; the timeouts next to them are the configured ones.
var elapsed = regexp.MustCompile(`after (?:[0-9.]+(?:ns|µs|ms|s|m|h))+`)

// maskElapsed replaces every measured duration in out with "after
// <elapsed>", the one part of Run's output that changes from run to run.
func maskElapsed(out string) string {
	return elapsed.ReplaceAllString(out, "after <elapsed>")
}

func TestMaskElapsed(t *testing.T) {
	for in, want := range map[string]string{
		"failed after 27µs instead of waiting out the 2s timeout": "failed after <elapsed> instead of waiting out the 2s timeout",
		"failed after 301.16ms, the whole 300ms timeout":          "failed after <elapsed>, the whole 300ms timeout",
		"failed after 1m0.002s, the whole 1m0s timeout":           "failed after <elapsed>, the whole 1m0s timeout",
		"hello, joe": "hello, joe",
	} {
		assert.Equal(t, want, maskElapsed(in), in)
	}
}

func TestAsk(t *testing.T) {
	cancelled := func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, svc, req *nats.Conn) // responders, and requests made first
		ctx     func() (context.Context, context.CancelFunc)
		subject string
		timeout time.Duration
		want    string
		wantErr []error // every one must match with errors.Is
		notErr  []error // none may match
	}{
		{name: "greeter answers", setup: greeter, subject: GreetJoe, timeout: time.Second, want: "hello, joe"},
		{name: "nobody subscribes", subject: GreetJoe, timeout: time.Minute,
			wantErr: []error{nats.ErrNoResponders}, notErr: []error{nats.ErrTimeout}},
		{name: "greeter drained after one answer", subject: GreetJoe, timeout: time.Minute,
			setup: func(t *testing.T, svc, req *nats.Conn) {
				greeter(t, svc, req)
				got, _, err := Ask(context.Background(), req, GreetJoe, time.Second)
				require.NoError(t, err)
				require.Equal(t, "hello, joe", got)
			},
			wantErr: []error{nats.ErrNoResponders}},
		{name: "other subject than the greeter's", setup: greeter, subject: "greet.joe.smith", timeout: time.Minute,
			wantErr: []error{nats.ErrNoResponders}},
		{name: "silent subscriber times out", setup: silent, subject: SilentJoe, timeout: 50 * time.Millisecond,
			wantErr: []error{nats.ErrTimeout, context.DeadlineExceeded}, notErr: []error{nats.ErrNoResponders}},
		{name: "caller cancelled", setup: silent, ctx: cancelled, subject: SilentJoe, timeout: time.Minute,
			wantErr: []error{context.Canceled}, notErr: []error{nats.ErrTimeout}},
		{name: "caller cancelled, nobody subscribes", ctx: cancelled, subject: GreetJoe, timeout: time.Minute,
			wantErr: []error{context.Canceled}, notErr: []error{nats.ErrNoResponders}},
		{name: "caller deadline first", setup: silent, subject: SilentJoe, timeout: time.Minute,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 20*time.Millisecond)
			},
			wantErr: []error{context.DeadlineExceeded}, notErr: []error{nats.ErrTimeout}},
		{name: "zero timeout", setup: greeter, subject: GreetJoe, timeout: 0, wantErr: []error{nats.ErrInvalidArg}},
		{name: "negative timeout", setup: greeter, subject: GreetJoe, timeout: -time.Second, wantErr: []error{nats.ErrInvalidArg}},
		{name: "empty subject", subject: "", timeout: time.Second, wantErr: []error{nats.ErrBadSubject}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newEnv(t)
			svc := connect(t, env, "service")
			req := connect(t, env, "requester")
			if tc.setup != nil {
				tc.setup(t, svc, req)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()

			got, _, err := Ask(ctx, req, tc.subject, tc.timeout)
			if len(tc.wantErr) == 0 {
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
				return
			}
			for _, want := range tc.wantErr {
				assert.ErrorIs(t, err, want)
			}
			for _, not := range tc.notErr {
				assert.NotErrorIs(t, err, not)
			}
			assert.Empty(t, got)
		})
	}
}

// greeter starts the one-request greeter on svc.
func greeter(t *testing.T, svc, _ *nats.Conn) {
	t.Helper()
	_, err := ServeOnce(svc)
	require.NoError(t, err)
}

// silent starts the subscriber that never answers on svc.
func silent(t *testing.T, svc, _ *nats.Conn) {
	t.Helper()
	_, err := ServeSilent(svc)
	require.NoError(t, err)
}

func TestAskClosedConnection(t *testing.T) {
	env, _ := newEnv(t)
	nc := connect(t, env, "requester")
	nc.Close()
	_, _, err := Ask(context.Background(), nc, GreetJoe, time.Second)
	assert.ErrorIs(t, err, nats.ErrConnectionClosed)
}

func TestServeOnce(t *testing.T) {
	env, s := newEnv(t)
	svc := connect(t, env, "service")
	req := connect(t, env, "requester")
	g, err := ServeOnce(svc)
	require.NoError(t, err)
	require.True(t, s.GlobalAccount().SubscriptionInterest(GreetJoe), "ServeOnce returned before the server had the subscription")

	// Before the first request there is no drain to wait for.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, g.WaitDrained(ctx), context.Canceled)

	got, _, err := Ask(context.Background(), req, GreetJoe, time.Second)
	require.NoError(t, err)
	assert.Equal(t, "hello, joe", got)

	// The greeter sent its UNSUB ahead of the reply: the server had dropped
	// the interest before the reply reached us, with no wait in between.
	assert.False(t, s.GlobalAccount().SubscriptionInterest(GreetJoe), "interest left after the reply")
	require.NoError(t, g.WaitDrained(context.Background()))
	assert.False(t, g.sub.IsValid(), "subscription still valid after its drain")
	_, _, err = Ask(context.Background(), req, GreetJoe, time.Minute)
	assert.ErrorIs(t, err, nats.ErrNoResponders)
}

func TestServeOnceIgnoresPlainPublish(t *testing.T) {
	env, _ := newEnv(t)
	svc := connect(t, env, "service")
	req := connect(t, env, "requester")
	_, err := ServeOnce(svc)
	require.NoError(t, err)

	// A publish without a reply subject is not a request: it gets no answer
	// and no 503, and it does not make the greeter drain. The request after
	// it, on the same connection, reaches the greeter after it.
	require.NoError(t, req.Publish(GreetJoe, nil))
	got, _, err := Ask(context.Background(), req, GreetJoe, time.Second)
	require.NoError(t, err)
	assert.Equal(t, "hello, joe", got)
	_, _, err = Ask(context.Background(), req, GreetJoe, time.Minute)
	assert.ErrorIs(t, err, nats.ErrNoResponders)
}

// TestServeOnceAcrossCluster runs the greeter on node 1 and the requester on
// node 3: the request after the answer fails with no responders there too,
// with no wait in between, because node 1 forwards the loss of interest to
// node 3 on the same route connection as the reply, and ahead of it.
func TestServeOnceAcrossCluster(t *testing.T) {
	nodes := testserver.NewCluster(t, 3)
	svcEnv := cli.NewEnv("noresponders", nodes[0].ClientURL())
	t.Cleanup(func() { require.NoError(t, svcEnv.Close()) })
	reqEnv := cli.NewEnv("noresponders", nodes[2].ClientURL())
	t.Cleanup(func() { require.NoError(t, reqEnv.Close()) })

	_, err := ServeOnce(connect(t, svcEnv, "service"))
	require.NoError(t, err)
	require.NoError(t, testserver.WaitForInterest(nodes[2], GreetJoe))
	req := connect(t, reqEnv, "requester")
	got, _, err := Ask(context.Background(), req, GreetJoe, time.Second)
	require.NoError(t, err)
	assert.Equal(t, "hello, joe", got)
	_, _, err = Ask(context.Background(), req, GreetJoe, time.Minute)
	assert.ErrorIs(t, err, nats.ErrNoResponders)
}

func TestRun(t *testing.T) {
	// keepServing answers every greet.* request, as `nats reply` would.
	keepServing := func(t *testing.T, env *cli.Env) {
		nc := connect(t, env, "other service")
		_, err := nc.Subscribe(GreetSubjects, func(m *nats.Msg) { _ = m.Respond([]byte("hi")) })
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
	}
	// serveHalf is the -serve half of another process, without -silent.
	serveHalf := func(t *testing.T, env *cli.Env) {
		_, err := ServeOnce(connect(t, env, "other service"))
		require.NoError(t, err)
	}
	tests := []struct {
		name    string
		cfg     Config
		setup   func(t *testing.T, env *cli.Env)
		ctx     func() (context.Context, context.CancelFunc)
		want    string // with durations masked
		wantErr error
		wantMsg string // a part of the error's text
	}{
		{name: "both halves", cfg: Config{Timeout: DefaultTimeout},
			want: "hello, joe\n" +
				"greeter drained: nobody subscribes to greet.* any more\n" +
				"no responders: failed after <elapsed> instead of waiting out the 2s timeout\n"},
		// The timeout is the answered request's too: long enough for it
		// on a loaded machine.
		{name: "both halves, silent", cfg: Config{Timeout: time.Second, Silent: true},
			want: "hello, joe\n" +
				"greeter drained: nobody subscribes to greet.* any more\n" +
				"no responders: failed after <elapsed> instead of waiting out the 1s timeout\n" +
				"timeout: failed after <elapsed>, the whole 1s timeout: silent.* has a subscriber that never answers\n"},
		{name: "request only, against a serve half", cfg: Config{Timeout: DefaultTimeout, Mode: cli.Mode{Request: true}},
			setup: serveHalf,
			want: "hello, joe\n" +
				"no responders: failed after <elapsed> instead of waiting out the 2s timeout\n"},
		{name: "request only, nobody serves", cfg: Config{Timeout: DefaultTimeout, Mode: cli.Mode{Request: true}},
			wantErr: nats.ErrNoResponders, wantMsg: "start noresponders -serve"},
		{name: "request only, run twice against a serve half", cfg: Config{Timeout: DefaultTimeout, Mode: cli.Mode{Request: true}},
			setup: func(t *testing.T, env *cli.Env) {
				t.Helper()
				serveHalf(t, env)
				require.NoError(t, Run(context.Background(), env, Config{Timeout: DefaultTimeout, Mode: cli.Mode{Request: true}}, io.Discard))
			},
			wantErr: nats.ErrNoResponders, wantMsg: "whose greeter answers one request and then drains"},
		{name: "request only, something keeps answering", cfg: Config{Timeout: DefaultTimeout, Mode: cli.Mode{Request: true}},
			setup: keepServing, wantErr: ErrUnexpectedReply},
		{name: "request only, silent, serve half without -silent", cfg: Config{Timeout: DefaultTimeout, Silent: true, Mode: cli.Mode{Request: true}},
			setup: serveHalf, wantErr: nats.ErrNoResponders, wantMsg: "run the -serve half with -silent too"},
		{name: "cancelled", cfg: Config{Timeout: DefaultTimeout},
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			wantErr: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newEnv(t)
			if tc.setup != nil {
				tc.setup(t, env)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			var out bytes.Buffer
			err := Run(ctx, env, tc.cfg, &out)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				assert.Contains(t, err.Error(), tc.wantMsg)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, maskElapsed(out.String()))
		})
	}
}

func TestRunServe(t *testing.T) {
	tests := []struct {
		name   string
		silent bool
	}{
		{name: "greeter only"},
		{name: "with the silent subscriber", silent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, s := newEnv(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			var out bytes.Buffer
			cfg := Config{Timeout: DefaultTimeout, Silent: tc.silent, Mode: cli.Mode{Serve: true}}
			go func() { done <- Run(ctx, env, cfg, &out) }()

			// The -serve half answers a -request half on another connection
			// once the server has its subscription; wait for that on the
			// server's own state, then play the requester.
			require.NoError(t, testserver.WaitForInterest(s, GreetJoe))
			req := connect(t, env, "requester")
			got, _, err := Ask(context.Background(), req, GreetJoe, time.Second)
			require.NoError(t, err)
			assert.Equal(t, "hello, joe", got)
			_, _, err = Ask(context.Background(), req, GreetJoe, time.Minute)
			assert.ErrorIs(t, err, nats.ErrNoResponders)
			if tc.silent {
				require.NoError(t, testserver.WaitForInterest(s, SilentJoe))
				_, _, err = Ask(context.Background(), req, SilentJoe, 20*time.Millisecond)
				assert.ErrorIs(t, err, nats.ErrTimeout)
			}

			cancel()
			require.NoError(t, <-done)
			assert.True(t, strings.HasPrefix(out.String(), "serving greet.* on "+s.ClientURL()+" until interrupted: the greeter answers one request, then drains\n"), out.String())
			assert.Equal(t, tc.silent, strings.Contains(out.String(), "serving silent.* on "), out.String())
		})
	}
}

func TestRunServeInterruptedBeforeAnyRequest(t *testing.T) {
	env, _ := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	require.NoError(t, Run(ctx, env, Config{Timeout: DefaultTimeout, Mode: cli.Mode{Serve: true}}, &out))
	assert.NotContains(t, out.String(), "drained")
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    Config
		wantErr error  // matched with errors.Is; nil with errText
		errText string // for flag's own parse errors, which have no identity
	}{
		{name: "defaults", want: Config{Timeout: DefaultTimeout}},
		{name: "all flags", args: []string{"-timeout", "500ms", "-silent", "-request"},
			want: Config{Timeout: 500 * time.Millisecond, Silent: true, Mode: cli.Mode{Request: true}}},
		{name: "serve", args: []string{"-serve"}, want: Config{Timeout: DefaultTimeout, Mode: cli.Mode{Serve: true}}},
		{name: "zero timeout", args: []string{"-timeout", "0s"}, wantErr: cli.ErrUsage},
		{name: "negative timeout", args: []string{"-timeout", "-1s"}, wantErr: cli.ErrUsage},
		{name: "serve and request", args: []string{"-serve", "-request"}, wantErr: cli.ErrUsage},
		{name: "an argument", args: []string{"joe"}, wantErr: cli.ErrUsage},
		{name: "unknown flag", args: []string{"-responders", "3"}, errText: "flag provided but not defined: -responders"},
		{name: "bad duration", args: []string{"-timeout", "soon"}, errText: `invalid value "soon" for flag -timeout`},
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cfg Config
			fs, check := flags(&cfg)
			fs.SetOutput(&bytes.Buffer{})
			err := fs.Parse(tc.args)
			if err == nil {
				err = check()
			}
			switch {
			case tc.wantErr != nil:
				assert.ErrorIs(t, err, tc.wantErr)
			case tc.errText != "":
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.errText)
			default:
				require.NoError(t, err)
				assert.Equal(t, tc.want, cfg)
			}
		})
	}
}

// Example runs the whole scenario, as `go run ./noresponders` does, on an
// embedded server. The time the no-responders failure took varies from run
// to run, so it is masked as <elapsed>; everything else, the timeout it is
// compared with included, is checked as printed.
func Example() {
	env, err := cli.Embedded("noresponders")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer env.Close()

	var out bytes.Buffer
	if err := Run(context.Background(), env, Config{Timeout: DefaultTimeout}, &out); err != nil {
		fmt.Println(err)
	}
	fmt.Print(maskElapsed(out.String()))
	// Output:
	// hello, joe
	// greeter drained: nobody subscribes to greet.* any more
	// no responders: failed after <elapsed> instead of waiting out the 2s timeout
}

// Example_silent adds the contrast of -silent, with a short timeout: a
// subscriber that never answers makes the request wait it out.
func Example_silent() {
	env, err := cli.Embedded("noresponders")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer env.Close()

	var out bytes.Buffer
	// 1 s: "hello, joe" must come within it even on a loaded machine.
	if err := Run(context.Background(), env, Config{Timeout: time.Second, Silent: true}, &out); err != nil {
		fmt.Println(err)
	}
	fmt.Print(maskElapsed(out.String()))
	// Output:
	// hello, joe
	// greeter drained: nobody subscribes to greet.* any more
	// no responders: failed after <elapsed> instead of waiting out the 1s timeout
	// timeout: failed after <elapsed>, the whole 1s timeout: silent.* has a subscriber that never answers
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newEnv starts a fresh embedded server for one test and returns an Env on
// it, drained and stopped when the test ends.
func newEnv(t *testing.T) *cli.Env {
	t.Helper()
	s := testserver.New(t)
	env := cli.NewEnv("singlereply", s.ClientURL())
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	return env
}

func TestGreet(t *testing.T) {
	tests := []struct {
		name    string
		serve   bool                                         // start the greeter
		silent  bool                                         // a subscriber that never replies
		ctx     func() (context.Context, context.CancelFunc) // the caller's context
		who     string
		timeout time.Duration
		want    string
		wantErr []error // every one must match with errors.Is
	}{
		{name: "reply", serve: true, who: "joe", timeout: time.Second, want: "hello, joe"},
		{name: "unicode name", serve: true, who: "zoë", timeout: time.Second, want: "hello, zoë"},
		{name: "no responders", who: "joe", timeout: time.Second, wantErr: []error{nats.ErrNoResponders}},
		{name: "timeout", silent: true, who: "joe", timeout: 50 * time.Millisecond,
			wantErr: []error{nats.ErrTimeout, context.DeadlineExceeded}},
		{name: "caller cancelled", silent: true, who: "joe", timeout: time.Second,
			ctx: func() (context.Context, context.CancelFunc) {
				c, f := context.WithCancel(context.Background())
				f()
				return c, f
			},
			wantErr: []error{context.Canceled}},
		{name: "caller deadline first", silent: true, who: "joe", timeout: time.Minute,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 20*time.Millisecond)
			},
			wantErr: []error{context.DeadlineExceeded}},
		{name: "empty name", serve: true, who: "", timeout: time.Second, wantErr: []error{nats.ErrBadSubject}},
		{name: "two tokens", serve: true, who: "a.b", timeout: time.Second, wantErr: []error{nats.ErrBadSubject}},
		{name: "wildcard", serve: true, who: "*", timeout: time.Second, wantErr: []error{nats.ErrBadSubject}},
		{name: "full wildcard", serve: true, who: ">", timeout: time.Second, wantErr: []error{nats.ErrBadSubject}},
		{name: "control character", serve: true, who: "a\x1b[31mb", timeout: time.Second, wantErr: []error{nats.ErrBadSubject}},
		{name: "space", serve: true, who: "a b", timeout: time.Second, wantErr: []error{nats.ErrBadSubject}},
		{name: "too long", serve: true, who: strings.Repeat("a", MaxNameLen+1), timeout: time.Second, wantErr: []error{nats.ErrBadSubject}},
		{name: "longest", serve: true, who: strings.Repeat("a", MaxNameLen), timeout: time.Second, want: "hello, " + strings.Repeat("a", MaxNameLen)},
		{name: "zero timeout", serve: true, who: "joe", timeout: 0, wantErr: []error{nats.ErrInvalidArg}},
		{name: "negative timeout", serve: true, who: "joe", timeout: -time.Second, wantErr: []error{nats.ErrInvalidArg}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			if tc.serve {
				svc, err := env.Connect("service")
				require.NoError(t, err)
				_, err = ServeGreeter(svc)
				require.NoError(t, err)
			}
			if tc.silent {
				svc, err := env.Connect("silent")
				require.NoError(t, err)
				// Takes requests and never answers them.
				_, err = svc.Subscribe(GreetSubjects, func(*nats.Msg) {})
				require.NoError(t, err)
				require.NoError(t, svc.Flush())
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			nc, err := env.Connect("requester")
			require.NoError(t, err)

			got, err := Greet(ctx, nc, tc.who, tc.timeout)
			if len(tc.wantErr) == 0 {
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
				return
			}
			for _, want := range tc.wantErr {
				assert.ErrorIs(t, err, want)
			}
			assert.Empty(t, got)
		})
	}
}

func TestGreetClosedConnection(t *testing.T) {
	env := newEnv(t)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	nc.Close()
	_, err = Greet(context.Background(), nc, "joe", time.Second)
	assert.ErrorIs(t, err, nats.ErrConnectionClosed)
}

func TestGreeterIgnoresPlainPublish(t *testing.T) {
	env := newEnv(t)
	svc, err := env.Connect("service")
	require.NoError(t, err)
	sub, err := ServeGreeter(svc)
	require.NoError(t, err)
	nc, err := env.Connect("publisher")
	require.NoError(t, err)
	require.NoError(t, nc.Publish("greet.joe", nil))
	require.NoError(t, nc.Flush())
	// The greeter is still healthy and answers the next real request.
	got, err := Greet(context.Background(), nc, "sue", time.Second)
	require.NoError(t, err)
	assert.Equal(t, "hello, sue", got)
	require.NoError(t, sub.Drain())
}

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		want    string
		wantErr error
	}{
		{name: "default names", cfg: Config{Names: DefaultNames, Timeout: DefaultTimeout}, want: "hello, joe\nhello, sue\nhello, bob\n"},
		{name: "given names", cfg: Config{Names: []string{"ann"}, Timeout: DefaultTimeout}, want: "hello, ann\n"},
		{name: "request only, nobody serves", cfg: Config{Names: DefaultNames, Timeout: DefaultTimeout, Mode: cli.Mode{Request: true}}, wantErr: nats.ErrNoResponders},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			var out bytes.Buffer
			err := Run(context.Background(), env, tc.cfg, &out)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, out.String())
		})
	}
}

func TestRunServeStopsOnCancel(t *testing.T) {
	env := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- Run(ctx, env, Config{Timeout: DefaultTimeout, Mode: cli.Mode{Serve: true}}, &out) }()

	// The -serve half answers a -request half on another connection once its
	// subscription is in; wait for that on the server, then cancel.
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	var got string
	require.Eventually(t, func() bool {
		got, err = Greet(context.Background(), nc, "joe", time.Second)
		return err == nil
	}, 5*time.Second, 5*time.Millisecond, "the -serve half never answered")
	assert.Equal(t, "hello, joe", got)
	cancel()
	require.NoError(t, <-done)
}

func TestConfigCheck(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{name: "defaults", cfg: Config{Names: DefaultNames, Timeout: DefaultTimeout}, ok: true},
		{name: "zero timeout", cfg: Config{Names: DefaultNames}},
		{name: "negative timeout", cfg: Config{Names: DefaultNames, Timeout: -1}},
		{name: "bad name", cfg: Config{Names: []string{"a.b"}, Timeout: time.Second}},
		{name: "serve and request", cfg: Config{Names: DefaultNames, Timeout: time.Second, Mode: cli.Mode{Serve: true, Request: true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Check()
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, cli.ErrUsage)
		})
	}
}

// Example runs the whole scenario, as `go run ./singlereply` does, on an
// embedded server.
func Example() {
	env, err := cli.Embedded("singlereply")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer env.Close()

	cfg := Config{Names: DefaultNames, Timeout: DefaultTimeout}
	if err := Run(context.Background(), env, cfg, os.Stdout); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Println(err)
	}
	// Output:
	// hello, joe
	// hello, sue
	// hello, bob
}

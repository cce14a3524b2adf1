package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"reqreply/internal/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestUsagef(t *testing.T) {
	inner := errors.New("inner cause")
	tests := []struct {
		name    string
		err     error
		msg     string
		matches []error // errors.Is must hold for each
	}{
		{name: "text", err: Usagef("-n %d must be > 0", -1), msg: "-n -1 must be > 0", matches: []error{ErrUsage}},
		{name: "wraps with %w", err: Usagef("bad name: %w", inner), msg: "bad name: inner cause", matches: []error{ErrUsage, inner}},
		{name: "wraps a nats error", err: Usagef("%w", nats.ErrBadSubject), msg: nats.ErrBadSubject.Error(), matches: []error{ErrUsage, nats.ErrBadSubject}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.msg, tc.err.Error(), "the message is the formatted text alone")
			for _, want := range tc.matches {
				assert.ErrorIs(t, tc.err, want)
			}
			assert.NotErrorIs(t, tc.err, nats.ErrTimeout)
		})
	}
	// Wrapped again, it is still a usage error.
	assert.ErrorIs(t, fmt.Errorf("run: %w", Usagef("x")), ErrUsage)
}

// closedURL returns a nats:// URL on 127.0.0.1 where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "nats://" + addr
}

// env returns a getenv that knows only NATS_URL, set to url unless unset.
func env(url string, unset bool) func(string) string {
	return func(key string) string {
		if key == "NATS_URL" && !unset {
			return url
		}
		return ""
	}
}

func TestMainExitCodes(t *testing.T) {
	s := testserver.New(t)
	unreachable := closedURL(t)
	usageLine := regexp.MustCompile(`^prog: .* \(run with -h for usage\)\n$`)
	embeddedLine := regexp.MustCompile(`^prog: NATS_URL is unset; using an embedded nats-server at nats://127\.0\.0\.1:\d+ \(set NATS_URL=nats://host:4222 to use your own\)\n$`)

	connectAndFlush := func(_ context.Context, e *Env) error {
		nc, err := e.Connect("requester")
		if err != nil {
			return err
		}
		return nc.Flush()
	}
	tests := []struct {
		name       string
		args       []string
		check      func() error
		run        func(ctx context.Context, e *Env) error
		url        string // NATS_URL; s's URL unless unset
		unset      bool
		wantCode   int
		wantRun    bool
		wantStderr *regexp.Regexp
	}{
		{name: "ok", run: connectAndFlush, wantCode: ExitOK, wantRun: true, wantStderr: regexp.MustCompile(`^$`)},
		{name: "unknown flag", args: []string{"-bogus"}, wantCode: ExitUsage,
			wantStderr: regexp.MustCompile(`^prog: flag provided but not defined: -bogus \(run with -h for usage\)\n$`)},
		{name: "bad flag value", args: []string{"-n", "many"}, wantCode: ExitUsage, wantStderr: usageLine},
		{name: "help", args: []string{"-h"}, wantCode: ExitOK, wantStderr: regexp.MustCompile(`(?s)^Usage of prog:\n.*-n int\n.*how many`)},
		{name: "check error", check: func() error { return Usagef("-n must be > 0") }, wantCode: ExitUsage,
			wantStderr: regexp.MustCompile(`^prog: -n must be > 0 \(run with -h for usage\)\n$`)},
		{name: "check error not marked as usage", check: func() error { return errors.New("no") }, wantCode: ExitUsage, wantStderr: usageLine},
		{name: "run error", run: func(context.Context, *Env) error { return errors.New("boom") }, wantCode: ExitFailure, wantRun: true,
			wantStderr: regexp.MustCompile(`^prog: boom\n$`)},
		{name: "run error wrapping ErrUsage", run: func(context.Context, *Env) error { return fmt.Errorf("run: %w", Usagef("too many")) },
			wantCode: ExitUsage, wantRun: true, wantStderr: regexp.MustCompile(`^prog: run: too many \(run with -h for usage\)\n$`)},
		{name: "NATS_URL unset", unset: true, run: connectAndFlush, wantCode: ExitOK, wantRun: true, wantStderr: embeddedLine},
		{name: "NATS_URL blank", url: " \t", run: connectAndFlush, wantCode: ExitOK, wantRun: true, wantStderr: embeddedLine},
		{name: "NATS_URL unreachable", url: unreachable, run: connectAndFlush, wantCode: ExitFailure, wantRun: true,
			wantStderr: regexp.MustCompile(`^prog: connect prog requester to ` + regexp.QuoteMeta(unreachable) + `: nats: no servers available for connection\n$`)},
		{name: "interrupted", wantCode: ExitOK, wantRun: true,
			run: func(ctx context.Context, e *Env) error {
				if _, err := e.Connect("service"); err != nil {
					return err
				}
				// What Ctrl-C does: Main's signal handling turns it into
				// the end of ctx, not the end of the process.
				if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
					return err
				}
				<-ctx.Done()
				return ctx.Err()
			},
			wantStderr: regexp.MustCompile(`^prog: interrupted; connections drained\n$`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("prog", flag.ContinueOnError)
			fs.Int("n", 1, "how many")
			ran := false
			run := func(ctx context.Context, e *Env) error {
				ran = true
				if tc.run == nil {
					return nil
				}
				return tc.run(ctx, e)
			}
			url := tc.url
			if url == "" {
				url = s.ClientURL()
			}
			var stderr bytes.Buffer
			code := Exec(fs, tc.args, tc.check, run, env(url, tc.unset), &stderr)
			assert.Equal(t, tc.wantCode, code)
			assert.Equal(t, tc.wantRun, ran, "run called")
			assert.Regexp(t, tc.wantStderr, stderr.String())
		})
	}
}

func TestFromEnvironment(t *testing.T) {
	tests := []struct {
		name     string
		url      string
		unset    bool
		wantURL  string // "" when embedded
		embedded bool
	}{
		{name: "one server", url: "nats://10.0.0.1:4222", wantURL: "nats://10.0.0.1:4222"},
		{name: "a list, trimmed", url: " nats://a:4222,nats://b:4222\n", wantURL: "nats://a:4222,nats://b:4222"},
		{name: "unset", unset: true, embedded: true},
		{name: "empty", url: "", embedded: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			e, err := FromEnvironment("scen", env(tc.url, tc.unset), &stderr)
			require.NoError(t, err)
			defer func() { require.NoError(t, e.Close()) }()
			assert.Equal(t, "scen", e.Scenario)
			if !tc.embedded {
				assert.Equal(t, tc.wantURL, e.URL)
				assert.Empty(t, stderr.String(), "nothing to announce")
				return
			}
			assert.Equal(t, "scen: NATS_URL is unset; using an embedded nats-server at "+e.URL+" (set NATS_URL=nats://host:4222 to use your own)\n", stderr.String())
			nc, err := e.Connect("probe")
			require.NoError(t, err)
			require.NoError(t, nc.Flush())
		})
	}
}

func TestCloseStopsTheEmbeddedServer(t *testing.T) {
	e, err := FromEnvironment("scen", env("", true), &bytes.Buffer{})
	require.NoError(t, err)
	require.NoError(t, e.Close())
	_, err = nats.Connect(e.URL)
	assert.ErrorIs(t, err, nats.ErrNoServers)
}

func TestConnect(t *testing.T) {
	s := testserver.New(t)
	e := NewEnv("scen", s.ClientURL())
	defer func() { require.NoError(t, e.Close()) }()

	// Each connection is named "<scenario> <role>", as servers report it.
	for _, role := range []string{"service", "requester"} {
		nc, err := e.Connect(role)
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
	}
	connz, err := s.Connz(&server.ConnzOptions{})
	require.NoError(t, err)
	var names []string
	for _, c := range connz.Conns {
		names = append(names, c.Name)
	}
	assert.ElementsMatch(t, []string{"scen service", "scen requester"}, names)

	// Later options override the defaults.
	nc, err := e.Connect("custom", nats.Name("my own name"))
	require.NoError(t, err)
	assert.Equal(t, "my own name", nc.Opts.Name)
}

func TestConnectUnreachable(t *testing.T) {
	e := NewEnv("scen", closedURL(t))
	_, err := e.Connect("requester")
	assert.ErrorIs(t, err, nats.ErrNoServers)
	assert.Contains(t, err.Error(), "connect scen requester to "+e.URL)
	require.NoError(t, e.Close())
}

// TestCloseDrains shows what Close adds to closing: a request that a
// service is still handling when Close starts is answered before the
// service's connection closes.
func TestCloseDrains(t *testing.T) {
	s := testserver.New(t)
	e := NewEnv("scen", s.ClientURL())
	// Close drains newest first: the service, then the requester.
	req, err := e.Connect("requester")
	require.NoError(t, err)
	svc, err := e.Connect("service")
	require.NoError(t, err)

	started, release := make(chan struct{}), make(chan struct{})
	_, err = svc.Subscribe("work", func(m *nats.Msg) {
		close(started)
		<-release
		_ = m.Respond([]byte("done"))
	})
	require.NoError(t, err)
	require.NoError(t, svc.Flush())
	draining := svc.StatusChanged(nats.DRAINING_SUBS)

	type result struct {
		reply string
		err   error
	}
	replied := make(chan result, 1)
	go func() {
		msg, err := req.Request("work", nil, 10*time.Second)
		if err != nil {
			replied <- result{err: err}
			return
		}
		replied <- result{reply: string(msg.Data)}
	}()
	<-started // the service holds the request

	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	<-draining // Close has begun draining the service
	close(release)
	require.NoError(t, <-closed)
	got := <-replied
	require.NoError(t, got.err)
	assert.Equal(t, "done", got.reply)
	assert.True(t, svc.IsClosed())
	assert.True(t, req.IsClosed())

	// Close is idempotent, and the Env is done: no new connections.
	require.NoError(t, e.Close())
	_, err = e.Connect("late")
	assert.ErrorIs(t, err, nats.ErrConnectionClosed)
}

func TestCloseAfterConnectionClosedElsewhere(t *testing.T) {
	s := testserver.New(t)
	e := NewEnv("scen", s.ClientURL())
	nc, err := e.Connect("requester")
	require.NoError(t, err)
	nc.Close()
	assert.NoError(t, e.Close(), "an already closed connection is not an error")
}

// TestConnectRacingClose closes the Env while a Connect is under way: past
// Env's own check, inside nats.Connect. The connection must not outlive the
// Env: Connect closes it and fails with nats.ErrConnectionClosed.
func TestConnectRacingClose(t *testing.T) {
	s := testserver.New(t)
	e := NewEnv("scen", s.ClientURL())
	inside, proceed := make(chan struct{}), make(chan struct{})
	// Options run inside nats.Connect, before it dials.
	pause := func(*nats.Options) error {
		close(inside)
		<-proceed
		return nil
	}
	var nc *nats.Conn
	var err error
	var wg sync.WaitGroup
	wg.Go(func() { nc, err = e.Connect("requester", pause) })
	<-inside
	require.NoError(t, e.Close())
	close(proceed)
	wg.Wait()
	assert.ErrorIs(t, err, nats.ErrConnectionClosed)
	assert.True(t, nc == nil, "a connection returned after Close")
	// The server learns of the close asynchronously: wait on its own count.
	assert.Eventually(t, func() bool { return s.NumClients() == 0 }, 5*time.Second, time.Millisecond, "a connection outlived its Env")
}

func TestConcurrentClose(t *testing.T) {
	e, err := FromEnvironment("scen", env("", true), &bytes.Buffer{})
	require.NoError(t, err)
	_, err = e.Connect("requester")
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { assert.NoError(t, e.Close()) })
	}
	wg.Wait()
}

func TestMode(t *testing.T) {
	tests := []struct {
		args          []string
		want          Mode
		serves, reqs  bool
		wantUsageFail bool
	}{
		{args: nil, want: Mode{}, serves: true, reqs: true},
		{args: []string{"-serve"}, want: Mode{Serve: true}, serves: true},
		{args: []string{"-request"}, want: Mode{Request: true}, reqs: true},
		{args: []string{"-serve", "-request"}, want: Mode{Serve: true, Request: true}, wantUsageFail: true},
	}
	for _, tc := range tests {
		t.Run(strings.Join(append([]string{"args"}, tc.args...), " "), func(t *testing.T) {
			var m Mode
			fs := flag.NewFlagSet("prog", flag.ContinueOnError)
			m.AddFlags(fs)
			require.NoError(t, fs.Parse(tc.args))
			assert.Equal(t, tc.want, m)
			if tc.wantUsageFail {
				assert.ErrorIs(t, m.Check(), ErrUsage)
				return
			}
			require.NoError(t, m.Check())
			assert.Equal(t, tc.serves, m.Serves())
			assert.Equal(t, tc.reqs, m.Requests())
		})
	}
}

func TestWaitForInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- WaitForInterrupt(ctx) }()
	cancel()
	assert.NoError(t, <-done)
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: "nats://127.0.0.1:4222", want: "nats://127.0.0.1:4222"},
		{in: "nats://alice:s3cret@a:4222", want: "nats://alice:xxxxx@a:4222"},
		{in: "nats://a:4222, nats://bob:pw@b:4222", want: "nats://a:4222,nats://bob:xxxxx@b:4222"},
		{in: "nats://s3cret-token@a:4222", want: "nats://xxxxx@a:4222"},
		{in: "garbage", want: "garbage"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			assert.Equal(t, tc.want, Redact(tc.in))
		})
	}
}

// A drain that runs out of time loses messages: Close says so.
func TestCloseReportsDrainTimeout(t *testing.T) {
	s := testserver.New(t)
	env := NewEnv("cli", s.ClientURL())
	nc, err := env.Connect("stuck", nats.DrainTimeout(50*time.Millisecond))
	require.NoError(t, err)
	// A synchronous subscription with a message nobody reads keeps the
	// drain from finishing.
	_, err = nc.SubscribeSync("stuck")
	require.NoError(t, err)
	require.NoError(t, nc.Publish("stuck", []byte("unread")))
	require.NoError(t, nc.Flush())
	err = env.Close()
	assert.ErrorIs(t, err, nats.ErrDrainTimeout)
	assert.Contains(t, err.Error(), "cli stuck")
}

package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
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

	"reqreply/internal/testserver"
)

// syncBuffer is a bytes.Buffer that connection handlers may write to from
// their own goroutines while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// port returns the client port of s.
func port(s *server.Server) int { return s.Addr().(*net.TCPAddr).Port }

// withCredentials returns s's client URL with user info before the host.
func withCredentials(s *server.Server, userinfo string) string {
	return "nats://" + userinfo + "@" + strings.TrimPrefix(s.ClientURL(), "nats://")
}

// The events a connection prints when its server goes away and comes back,
// with the time, the connection's name and the server, credentials masked.
func TestConnectionEvents(t *testing.T) {
	const secret = "s3cretPW"
	users := testserver.WithUsers(&server.User{Username: "alice", Password: secret})
	first := testserver.New(t, users)
	url := withCredentials(first, "alice:"+secret)
	var stderr syncBuffer
	e := NewEnv("scen", url)
	e.Stderr = &stderr
	e.Reconnect = Reconnect{Wait: 10 * time.Millisecond, Max: -1}
	disconnected, reconnected := make(chan struct{}, 1), make(chan struct{}, 1)
	nc, err := e.Connect("service",
		nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnected <- struct{}{} }),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	p := port(first)
	testserver.Shutdown(first)
	<-disconnected
	second := testserver.New(t, users, testserver.WithPort(p))
	<-reconnected
	require.NoError(t, nc.Flush())
	require.NoError(t, e.Close())

	server := regexp.QuoteMeta("nats://alice:xxxxx@" + strings.TrimPrefix(second.ClientURL(), "nats://"))
	stamp := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z scen service: `
	want := regexp.MustCompile(`^` + stamp + `disconnected from ` + server + `: .+; retrying every 10ms, forever\n` +
		stamp + `reconnected to ` + server + `\n$`)
	assert.Regexp(t, want, stderr.String(), "Close's own drain prints nothing")
	assert.NotContains(t, stderr.String(), secret)
}

// A -serve whose connection is closed for good (-max-reconnects 0: the
// first loss ends it) exits 1 with one line saying which and why.
func TestServeLostForGood(t *testing.T) {
	s := testserver.New(t)
	connected := make(chan struct{})
	run := func(ctx context.Context, e *Env) error {
		if _, err := e.Connect("service"); err != nil {
			return err
		}
		close(connected)
		return WaitForInterrupt(ctx)
	}
	var stderr syncBuffer
	done := make(chan int, 1)
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	go func() {
		done <- Exec(fs, []string{"-max-reconnects", "0"}, nil, run, env(s.ClientURL(), false), &stderr)
	}()
	<-connected
	testserver.Shutdown(s)
	assert.Equal(t, ExitFailure, <-done)
	out := stderr.String()
	assert.Regexp(t, `(?m)^\S+ prog service: disconnected from nats://127\.0\.0\.1:\d+: .*; not retrying \(-max-reconnects 0\)$`, out)
	assert.Regexp(t, `(?m)^\S+ prog service: connection closed for good: .+$`, out)
	assert.Equal(t, 1, strings.Count(out, "connection closed for good"), "one line for the error:\n%s", out)
}

// While the server is down, a request waits in the reconnect buffer and
// fails within its own timeout; the run is never stalled by the reconnect
// policy, even reconnecting forever. Closing the connection then cannot
// drain it: Close says how much of the reconnect buffer was never sent.
func TestRequestWhileDisconnected(t *testing.T) {
	s := testserver.New(t)
	e := NewEnv("scen", s.ClientURL())
	e.Stderr = io.Discard
	disconnected := make(chan struct{}, 1)
	nc, err := e.Connect("requester", nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnected <- struct{}{} }))
	require.NoError(t, err)
	testserver.Shutdown(s)
	<-disconnected
	_, err = nc.Request("svc", nil, 20*time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout)
	err = e.Close()
	assert.ErrorIs(t, err, nats.ErrConnectionReconnecting)
	assert.Regexp(t, `^scen requester: closed while disconnected, \d+ bytes never sent: nats: connection reconnecting$`, err.Error())
}

// The first interrupt aborts a connection attempt that is waiting on a
// server which accepted the TCP connection but never speaks NATS: Connect
// returns context.Canceled, and the half-open connection is closed.
func TestConnectAbortedByInterrupt(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	e := NewEnv("scen", "nats://"+l.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	e.ctx = ctx
	got := make(chan error, 1)
	go func() {
		_, err := e.Connect("requester", nats.Timeout(time.Hour))
		got <- err
	}()
	accepted, err := l.Accept()
	require.NoError(t, err)
	defer accepted.Close()
	cancel()
	err = <-got
	assert.ErrorIs(t, err, context.Canceled)
	// The client's side is closed: reading ours ends.
	_, err = io.Copy(io.Discard, accepted)
	assert.NoError(t, err, "EOF ends the copy without an error")
	require.NoError(t, e.Close())
}

// Exec's promises on the command line.
func TestExecPromises(t *testing.T) {
	s := testserver.New(t)
	noop := func(context.Context, *Env) error { return nil }
	stuckDrain := func(_ context.Context, e *Env) error {
		nc, err := e.Connect("stuck", nats.DrainTimeout(20*time.Millisecond))
		if err != nil {
			return err
		}
		// A message nobody reads keeps the drain from finishing.
		if _, err := nc.SubscribeSync("stuck"); err != nil {
			return err
		}
		if err := nc.Publish("stuck", nil); err != nil {
			return err
		}
		return nc.Flush()
	}
	interruptedStuck := func(ctx context.Context, e *Env) error {
		if err := stuckDrain(ctx, e); err != nil {
			return err
		}
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
	tests := []struct {
		name     string
		args     []string
		url      string
		unset    bool
		run      func(context.Context, *Env) error
		wantCode int
		want     string // the whole of stderr, as a regexp
	}{
		{name: "flag after a name", args: []string{"joe", "-n", "1"}, wantCode: ExitUsage,
			want: `^prog: "-n" after the argument "joe": flags go before arguments \(use -- before an argument that begins with '-'\) \(run with -h for usage\)\n$`},
		{name: "dash name after --", args: []string{"--", "-joe"}, run: noop, wantCode: ExitOK, want: `^$`},
		{name: "request without NATS_URL", args: []string{"-request"}, unset: true, wantCode: ExitUsage,
			want: `^prog: -request needs NATS_URL: .*\(run with -h for usage\)\n$`},
		{name: "request with NATS_URL", args: []string{"-request"}, run: noop, wantCode: ExitOK, want: `^$`},
		{name: "bad reconnect wait", args: []string{"-reconnect-wait", "0s"}, wantCode: ExitUsage, want: `^prog: -reconnect-wait 0s must be > 0`},
		{name: "bad max reconnects", args: []string{"-max-reconnects", "-2"}, wantCode: ExitUsage, want: `^prog: -max-reconnects -2: want`},
		{name: "drain timeout printed once", run: stuckDrain, wantCode: ExitFailure,
			want: `^prog: drain: prog stuck: nats: draining connection timed out\n$`},
		{name: "interrupted, drain timed out: one line", run: interruptedStuck, wantCode: ExitFailure,
			want: `^prog: interrupted; drain: prog stuck: nats: draining connection timed out\n$`},
		{name: "a secret given to the Env is masked", wantCode: ExitFailure, want: `^prog: auth with xxxxx failed\n$`,
			run: func(_ context.Context, e *Env) error {
				e.AddSecret("t0ken-from-elsewhere")
				return errors.New("auth with t0ken-from-elsewhere failed")
			}},
		{name: "bad NATS_URL", url: "nats://127.0.0.1:notaport", wantCode: ExitUsage,
			want: `^prog: NATS_URL server 1, "nats://127.0.0.1:notaport": invalid port ":notaport" after host: bad server URL \(run with -h for usage\)\n$`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("prog", flag.ContinueOnError)
			fs.Int("n", 1, "how many")
			var m Mode
			m.AddFlags(fs)
			url := tc.url
			if url == "" {
				url = s.ClientURL()
			}
			run := tc.run
			if run == nil {
				run = func(context.Context, *Env) error { return errors.New("run called") }
			}
			var stderr syncBuffer
			code := Exec(fs, tc.args, nil, run, env(url, tc.unset), &stderr)
			assert.Equal(t, tc.wantCode, code, stderr.String())
			assert.Regexp(t, tc.want, stderr.String())
		})
	}
}

// All the drains of Close share one time limit, kept by the clock: a stuck
// connection (here one whose own nats.go drain timeout is an hour) uses it
// up, and the next one is closed without a drain; both are reported, and
// Close does not wait for each in turn.
func TestCloseBoundsAllDrains(t *testing.T) {
	s := testserver.New(t)
	e := NewEnv("scen", s.ClientURL())
	e.drainFor = 50 * time.Millisecond
	var conns []*nats.Conn
	for _, role := range []string{"stuck-1", "stuck-2"} {
		nc, err := e.Connect(role, nats.DrainTimeout(time.Hour))
		require.NoError(t, err)
		// A message nobody reads keeps the drain from finishing.
		sub, err := nc.SubscribeSync("stuck")
		require.NoError(t, err)
		require.NoError(t, nc.Publish("stuck", nil))
		_, err = sub.NextMsg(time.Minute) // one delivered...
		require.NoError(t, err)
		require.NoError(t, nc.Publish("stuck", nil))
		require.NoError(t, nc.Flush()) // ...and one more on its way
		conns = append(conns, nc)
	}
	// Close drains stuck-2 first; stuck-1 gets no time left.
	err := e.Close()
	assert.ErrorIs(t, err, nats.ErrDrainTimeout)
	assert.Equal(t, "scen stuck-2: nats: draining connection timed out\n"+
		"scen stuck-1: closed without a drain, the time for draining was used up: nats: draining connection timed out", err.Error())
	for _, nc := range conns {
		assert.True(t, nc.IsClosed())
	}
}

// Ctrl-C while a program connects to a server that accepted the TCP
// connection and never speaks: the attempt ends at once, and the program
// exits 0 with its one line.
func TestExecInterruptsConnect(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// What Ctrl-C does: Exec's signal handling ends the run's context.
		_ = syscall.Kill(syscall.Getpid(), syscall.SIGINT)
		_, _ = io.Copy(io.Discard, c) // until the client closes its side
	}()
	run := func(_ context.Context, e *Env) error {
		_, err := e.Connect("requester", nats.Timeout(time.Hour))
		return err
	}
	var stderr syncBuffer
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	code := Exec(fs, nil, nil, run, env("nats://"+l.Addr().String(), false), &stderr)
	assert.Equal(t, ExitOK, code)
	assert.Equal(t, "prog: interrupted; connections drained\n", stderr.String())
}

// A drain the program starts itself, which runs out of time, is reported
// once: by the close event, whose reason it is.
func TestProgramDrainTimeoutPrintedOnce(t *testing.T) {
	s := testserver.New(t)
	e := NewEnv("scen", s.ClientURL())
	var stderr syncBuffer
	e.Stderr = &stderr
	closed := make(chan struct{})
	nc, err := e.Connect("member", nats.DrainTimeout(20*time.Millisecond), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	require.NoError(t, err)
	_, err = nc.SubscribeSync("stuck")
	require.NoError(t, err)
	require.NoError(t, nc.Publish("stuck", nil))
	require.NoError(t, nc.Flush()) // the message is pending: the drain cannot finish
	require.NoError(t, nc.Drain())
	<-closed
	require.NoError(t, e.Close(), "closed already: nothing for Close to drain")
	assert.Regexp(t, `^\S+ scen member: connection closed: nats: draining connection timed out\n$`, stderr.String())
}

// A connection the program closes or drains itself, without an error (a
// demo's member leaving), prints no event: the demos' output showed
// "connection closed: closed by the program" between their own lines for
// every member they drained or closed on purpose.
func TestDeliberateCloseIsQuiet(t *testing.T) {
	s := testserver.New(t)
	var stderr syncBuffer
	e := NewEnv("scen", s.ClientURL())
	e.Stderr = &stderr
	// Env's closed handler runs before the one given here.
	closed1, closed2 := make(chan struct{}), make(chan struct{})
	drained, err := e.Connect("member-1", nats.ClosedHandler(func(*nats.Conn) { close(closed1) }))
	require.NoError(t, err)
	closedConn, err := e.Connect("member-2", nats.ClosedHandler(func(*nats.Conn) { close(closed2) }))
	require.NoError(t, err)

	require.NoError(t, drained.Drain())
	closedConn.Close()
	<-closed1
	<-closed2
	require.NoError(t, e.Close())
	assert.Empty(t, stderr.String())
}

// A run that ends with nats.ErrConnectionClosed because its connection was
// closed for good (queuegroup's Load sees the close first, by a status
// listener) exits 1 with one line for it: the connection's event. The run's
// error repeated it, and when the run returned before nats.go had run the
// closed handler, the event came after the error or not at all.
func TestRunSeesItsConnectionLost(t *testing.T) {
	s := testserver.New(t)
	connected := make(chan struct{})
	run := func(ctx context.Context, e *Env) error {
		nc, err := e.Connect("requester")
		if err != nil {
			return err
		}
		closed := nc.StatusChanged(nats.CLOSED)
		close(connected)
		select {
		case <-closed:
			return fmt.Errorf("load: %w", nats.ErrConnectionClosed)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var stderr syncBuffer
	done := make(chan int, 1)
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	go func() {
		done <- Exec(fs, []string{"-max-reconnects", "0"}, nil, run, env(s.ClientURL(), false), &stderr)
	}()
	<-connected
	testserver.Shutdown(s)
	assert.Equal(t, ExitFailure, <-done)
	out := stderr.String()
	assert.Regexp(t, `(?m)^\S+ prog requester: connection closed for good: .+$`, out)
	assert.Equal(t, 1, strings.Count(out, "connection closed"), "one line for the error:\n%s", out)
}

// helperEnv, set in a child process's environment, makes
// TestCtrlCDuringFinalDrain play the program instead of the test.
const helperEnv = "REQREPLY_CLI_HELPER"

// A Ctrl-C during the final drain of a finished run (a handler still
// working) is a first Ctrl-C: it ends the run's context, which the handler
// watches, and the program exits as its run said. Before, signal handling
// was handed back to Go as soon as the run returned, so that Ctrl-C killed
// the program at once (exit status "signal: interrupt"), with no drain and
// no line. The program runs in a child process, as a Ctrl-C would kill it.
func TestCtrlCDuringFinalDrain(t *testing.T) {
	if os.Getenv(helperEnv) == "final-drain" {
		os.Exit(ctrlCDuringFinalDrainChild())
	}
	s := testserver.New(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCtrlCDuringFinalDrain$")
	cmd.Env = append(os.Environ(), helperEnv+"=final-drain", "NATS_URL="+s.ClientURL())
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	// The child says when its run has returned with the handler at work.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "child: %s", stderr.String())
	require.Equal(t, "run done\n", line)
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	err = cmd.Wait()
	require.NoError(t, err, "the child must exit 0, not be killed; stderr:\n%s", stderr.String())
	// The Ctrl-C may also land just before the run returns: then it is
	// the run's interrupt, with its one line.
	assert.Regexp(t, `^(prog: interrupted; connections drained\n)?$`, stderr.String())
}

// ctrlCDuringFinalDrainChild is the program of TestCtrlCDuringFinalDrain:
// its run leaves a handler working until the run's context ends (at most a
// minute), and returns.
func ctrlCDuringFinalDrainChild() int {
	run := func(ctx context.Context, e *Env) error {
		svc, err := e.Connect("service")
		if err != nil {
			return err
		}
		started := make(chan struct{})
		if _, err := svc.Subscribe("work", func(*nats.Msg) {
			close(started)
			select {
			case <-ctx.Done():
			case <-time.After(time.Minute):
			}
		}); err != nil {
			return err
		}
		if err := svc.Flush(); err != nil {
			return err
		}
		nc, err := e.Connect("requester")
		if err != nil {
			return err
		}
		if err := nc.Publish("work", nil); err != nil {
			return err
		}
		<-started
		fmt.Println("run done")
		return nil
	}
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	return Exec(fs, nil, nil, run, os.Getenv, os.Stderr)
}

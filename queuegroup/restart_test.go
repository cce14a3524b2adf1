package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

// A server that goes away mid-run. The requests made while the
// requester is disconnected end within their timeout and are counted (the
// run never stalls), and a connection that closes for good ends the run at
// once with the counts so far.

// closeAll closes the connections of a test whose server is gone, so that
// env.Close does not try to drain connections that cannot reach a server.
func closeAll(conns ...*nats.Conn) {
	for _, nc := range conns {
		nc.Close()
	}
}

// waitStatus returns once ch reports status want, or fails tb after
// testserver.ReadyTimeout.
func waitStatus(tb testing.TB, ch chan nats.Status, want nats.Status) {
	tb.Helper()
	timeout := time.NewTimer(testserver.ReadyTimeout)
	defer timeout.Stop()
	for {
		select {
		case st := <-ch:
			if st == want {
				return
			}
		case <-timeout.C:
			tb.Fatalf("connection never reached status %v", want)
		}
	}
}

// TestLoadServerGone shuts the server down for good a third of the way in,
// with a request timeout of a minute: the requester's connection closes
// after its one reconnect attempt, and Load returns at once with
// nats.ErrConnectionClosed and every request accounted for, most of them
// never sent. Before the fix, the run sat out the timeouts and then failed
// with the error alone.
func TestLoadServerGone(t *testing.T) {
	s, env := newServerEnv(t)
	members, err := startWorkers(env, DefaultConfig(), 1, 3, nil)
	require.NoError(t, err)
	nc, err := env.Connect("requester", nats.MaxReconnects(1), nats.ReconnectWait(10*time.Millisecond))
	require.NoError(t, err)
	defer closeAll(append(memberConns(members), nc)...)

	res, err := Load(context.Background(), nc, LoadConfig{
		Subject: Subject, Requests: 3000, Concurrency: 8, Timeout: time.Minute, At: 1000,
		Before: func(context.Context) error {
			testserver.Shutdown(s)
			return nil
		},
	})
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
	require.NotNil(t, res, "the counts so far come with the error")
	checkLaws(t, res, 1)
	assert.GreaterOrEqual(t, res.Answered, 999-8, "the requests before the shutdown were answered")
	assert.Positive(t, res.Unsent)
	assert.Zero(t, res.TimedOut, "nothing waited out a minute")
}

// TestLoadServerRestart stops the server a third of the way in and keeps
// it down for the rest of the run, then restarts it on the same port: with
// nats.go's reconnect buffer, the requests made while disconnected are held
// and time out by the clock; with the buffer off (nats.ReconnectBufSize(-1))
// each fails at once, counted in Failed. Either way the run ends, with
// every request accounted for. After the restart everyone reconnects and a
// new run is answered exactly once.
func TestLoadServerRestart(t *testing.T) {
	for _, buffer := range []bool{true, false} {
		t.Run(fmt.Sprintf("reconnect-buffer=%v", buffer), func(t *testing.T) {
			s := testserver.New(t)
			port := s.Addr().(*net.TCPAddr).Port
			env := cli.NewEnv("queuegroup", s.ClientURL())
			members, err := startWorkers(env, DefaultConfig(), 1, 3, nil)
			require.NoError(t, err)
			opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(10 * time.Millisecond)}
			if !buffer {
				opts = append(opts, nats.ReconnectBufSize(-1))
			}
			nc, err := env.Connect("requester", opts...)
			require.NoError(t, err)
			t.Cleanup(func() { closeAll(append(memberConns(members), nc)...) })
			status := nc.StatusChanged(nats.RECONNECTING, nats.CONNECTED)
			defer nc.RemoveStatusListener(status)

			const requests, at = 60, 21
			res, err := Load(context.Background(), nc, LoadConfig{
				Subject: Subject, Requests: requests, Concurrency: 4, Timeout: 100 * time.Millisecond, At: at,
				Before: func(context.Context) error {
					testserver.Shutdown(s)
					waitStatus(t, status, nats.RECONNECTING)
					return nil
				},
			})
			require.NoError(t, err, "a disconnect does not end the run")
			checkLaws(t, res, 1)
			assert.LessOrEqual(t, res.Answered, at-1, "nothing sent after the shutdown is answered")
			notAnswered := requests - at + 1 // sent while the server was down
			if buffer {
				assert.GreaterOrEqual(t, res.TimedOut, notAnswered, "held in the buffer, timed out by the clock")
			} else {
				assert.GreaterOrEqual(t, res.Failed, notAnswered, "refused at once, counted")
			}

			// The same port again: everyone reconnects, and the group works.
			s2 := testserver.New(t, func(o *server.Options) { o.Port = port })
			waitStatus(t, status, nats.CONNECTED)
			require.NoError(t, testserver.WaitForSubscribers(s2, Subject, len(members)))
			res, err = Load(context.Background(), nc, LoadConfig{
				Subject: Subject, Requests: 30, Concurrency: 4, Timeout: 5 * time.Second, Settle: settleAll(members...),
			})
			require.NoError(t, err)
			checkLaws(t, res, 1)
			assert.True(t, res.Exact(), "%+v", res)
			require.NoError(t, env.Close())
		})
	}
}

// memberConns returns the members' connections.
func memberConns(members []*Member) []*nats.Conn {
	var out []*nats.Conn
	for _, m := range members {
		out = append(out, m.Conn())
	}
	return out
}

// TestLoadConnectionClosed closes the requester's own connection mid-run:
// the run ends at once with nats.ErrConnectionClosed and its counts.
func TestLoadConnectionClosed(t *testing.T) {
	env := newEnv(t)
	_, err := startWorkers(env, DefaultConfig(), 1, 2, nil)
	require.NoError(t, err)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	res, err := Load(context.Background(), nc, LoadConfig{
		Subject: Subject, Requests: 100, Concurrency: 4, Timeout: time.Minute, At: 50,
		Before: func(context.Context) error { nc.Close(); return nil },
	})
	require.True(t, errors.Is(err, nats.ErrConnectionClosed), "%v", err)
	require.NotNil(t, res)
	checkLaws(t, res, 1)
	assert.Positive(t, res.Unsent)
	var out bytes.Buffer
	assert.ErrorIs(t, loadError(&out, res, err), nats.ErrConnectionClosed)
	assert.Contains(t, out.String(), "run ended early")
}

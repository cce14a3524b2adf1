package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/testserver"
)

// TestDie kills one member of three mid-run (its connection closed without
// drain as it takes its 2nd request) and checks that what it held times
// out, is counted, and with retry is answered by the others. The retry
// waits until the server has dropped the dead member, read from the
// server's state, so no retry can be routed to it. The victim gets fewer
// than 2 of 300 requests with probability below 1e-50. The timeout is 1 s,
// far above what a live member takes even under -race on a loaded machine:
// with 100 ms, live members' replies came late under load (-cpu 1, several
// test binaries at once), failing the assertions on Late and Exact.
func TestDie(t *testing.T) {
	tests := []struct {
		retry       bool
		concurrency int
	}{
		{false, 1}, {false, 8}, {true, 1}, {true, 8},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("retry=%v/concurrency=%d", tc.retry, tc.concurrency), func(t *testing.T) {
			s, env := newServerEnv(t)
			members, err := startWorkers(env, DefaultConfig(), 1, 3, func(i int, o *MemberOptions) {
				if i == 1 {
					o.DieAt = DieAt
				}
			})
			require.NoError(t, err)
			victim := members[0]
			nc, err := env.Connect("requester")
			require.NoError(t, err)
			res, err := Load(context.Background(), nc, LoadConfig{
				Subject: Subject, Requests: 300, Concurrency: tc.concurrency, Timeout: time.Second,
				Retry: tc.retry,
				BeforeRetry: func(context.Context) error {
					<-victim.Died()
					require.NoError(t, testserver.WaitForSubscribers(s, Subject, 2))
					return nil
				},
				Settle: settleAll(members...),
			})
			require.NoError(t, err)
			require.True(t, isClosed(victim.Died()), "the victim never died")

			// The victim answered its first request and held the second.
			assert.EqualValues(t, DieAt-1, victim.Answered())
			assert.Zero(t, res.Duplicates)
			assert.Zero(t, res.Late, "a dead member cannot answer late")
			if tc.retry {
				assert.True(t, res.Exact(), "%+v", res)
				assert.GreaterOrEqual(t, res.Retried, 1)
				assert.Equal(t, res.Retried, res.RetryAnswered)
				return
			}
			assert.GreaterOrEqual(t, res.TimedOut, 1, "the request in the victim's hands")
			assert.Equal(t, res.Requests, res.Answered+res.TimedOut)
		})
	}
}

// TestAllGone checks that once every member has left, by drain or by an
// abrupt close, a request fails with nats.ErrNoResponders, not a timeout:
// the timeout is a minute, and the error identity says which it was.
func TestAllGone(t *testing.T) {
	for _, how := range []string{"drain", "close"} {
		t.Run(how, func(t *testing.T) {
			s, env := newServerEnv(t)
			members, err := startWorkers(env, DefaultConfig(), 1, 3, nil)
			require.NoError(t, err)
			nc, err := env.Connect("requester")
			require.NoError(t, err)
			for _, m := range members {
				if how == "drain" {
					require.NoError(t, m.Drain(context.Background()))
				} else {
					m.Conn().Close()
				}
			}
			// Drain returns after the server has the UNSUB; a close is
			// only seen by the server when it reads the socket's end.
			require.NoError(t, testserver.WaitForSubscribers(s, Subject, 0))

			_, err = nc.Request(Subject, []byte("1"), time.Minute)
			assert.ErrorIs(t, err, nats.ErrNoResponders)
			_, err = Load(context.Background(), nc, LoadConfig{Subject: Subject, Requests: 3, Concurrency: 3, Timeout: time.Minute})
			assert.ErrorIs(t, err, nats.ErrNoResponders)
		})
	}
}

// TestRunGone runs -demo gone, which relies on Drain alone (no server
// state) to make the last request fail with no responders.
func TestRunGone(t *testing.T) {
	env := newEnv(t)
	var out bytes.Buffer
	cfg := DefaultConfig()
	cfg.Demo = DemoGone
	cfg.Timeout = time.Minute
	require.NoError(t, Run(context.Background(), env, cfg, &out))
	assert.Contains(t, out.String(), "request 31: nats: no responders available for request\n")
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Under load with a tiny timeout (-demo die -requests 30000 -concurrency
// 5000 -timeout 20ms) the demo said "worker-1 died holding 30000 requests",
// though most had been answered late by the members left. With late
// replies, the line no longer puts every timed-out request on the victim.
func TestLostLine(t *testing.T) {
	tests := []struct {
		name string
		res  Result
		cfg  Config
		want string
	}{
		{name: "only the victim's", res: Result{TimedOut: 3}, cfg: Config{Timeout: time.Second},
			want: "worker-1 died holding 3 requests: no reply within 1s"},
		{name: "retried", res: Result{Retried: 1}, cfg: Config{Timeout: time.Second, Retry: true},
			want: "worker-1 died holding 1 request: no reply within 1s"},
		{name: "late replies too", res: Result{TimedOut: 30000, Late: 26151}, cfg: Config{Timeout: 20 * time.Millisecond},
			want: "30000 requests got no reply within 20ms: those worker-1 held, and others the members left answered too late (26151 late replies: the timeout is too short for this load)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, lostLine("worker-1", &tc.res, tc.cfg))
		})
	}
}

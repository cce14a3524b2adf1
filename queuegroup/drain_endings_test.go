package main

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

// TestLoadDrainedMidRun: the requester's connection drains in the
// middle of a Load (Before at request At starts nc.Drain). The run must
// end within about a round trip of the drain, not hold it: the drain
// ends well under its DrainTimeout, without nats.ErrDrainTimeout.
func TestLoadDrainedMidRun(t *testing.T) {
	tests := []struct {
		name        string
		concurrency int
		at          int
	}{
		{name: "sequential", concurrency: 1, at: 50},
		{name: "concurrent", concurrency: 16, at: 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testserver.New(t)
			svc, err := nats.Connect(s.ClientURL())
			require.NoError(t, err)
			defer svc.Close()
			_, err = svc.QueueSubscribe(Subject, "q", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
			require.NoError(t, err)
			require.NoError(t, svc.Flush())
			nc, err := nats.Connect(s.ClientURL())
			require.NoError(t, err)
			defer nc.Close()
			closed := make(chan struct{})
			nc.SetClosedHandler(func(*nats.Conn) { close(closed) })

			var drained time.Time
			start := time.Now()
			res, err := Load(context.Background(), nc, LoadConfig{
				Subject: Subject, Requests: 200, Concurrency: tc.concurrency, Timeout: 2 * time.Second,
				At: tc.at, Before: func(context.Context) error { drained = time.Now(); return nc.Drain() },
			})
			took := time.Since(start)
			t.Logf("took %v, err %v, res %+v", took, err, res)
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("the connection never closed after its drain")
			}
			assert.Less(t, time.Since(drained), 3*time.Second, "the drain was held")
			assert.NotErrorIs(t, nc.LastError(), nats.ErrDrainTimeout)
			assert.Less(t, took, 3*time.Second)
		})
	}
}

// TestLeaveDuringConnectionDrain: a member is leaving (Leave, its
// subscription draining while it works on a request it holds) when its
// connection is drained too (the process got SIGTERM). The drain answers
// the held request, so the leave completed gracefully: Leave should return
// nil, not an error saying the connection closed and "the requests still
// held are then never answered" while the requester did get its reply.
func TestLeaveDuringConnectionDrain(t *testing.T) {
	for _, tc := range []struct{ name string }{{name: "drain of the connection during Leave"}} {
		t.Run(tc.name, func(t *testing.T) {
			s := testserver.New(t)
			env := cli.NewEnv("queuegroup", s.ClientURL())
			t.Cleanup(func() { _ = env.Close() })
			started, release := make(chan struct{}), make(chan struct{})
			m, err := join(env, Subject, "q", "m1", MemberOptions{Work: func([]byte) error {
				close(started)
				<-release
				return nil
			}})
			require.NoError(t, err)
			nc, err := nats.Connect(s.ClientURL())
			require.NoError(t, err)
			defer nc.Close()
			replied := make(chan error, 1)
			go func() {
				_, err := nc.Request(Subject, []byte("x"), 10*time.Second)
				replied <- err
			}()
			<-started
			left := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				left <- m.Leave(ctx)
			}()
			// Leave's UNSUB has reached the server once it counts no interest.
			require.NoError(t, testserver.WaitForNoInterest(s, Subject))
			require.NoError(t, m.Conn().Drain())
			close(release)
			require.NoError(t, <-replied, "the held request was answered")
			assert.NoError(t, <-left, "the leave completed: its held request was answered")
		})
	}
}

// TestReadStatsConnectionEndings: ReadStats waiting for an instance
// that never answers ends within a round trip, with
// nats.ErrConnectionClosed, when its connection drains or closes, and a
// drain is not held.
func TestReadStatsConnectionEndings(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(nc *nats.Conn)
	}{
		{name: "drained", end: func(nc *nats.Conn) { _ = nc.Drain() }},
		{name: "closed", end: func(nc *nats.Conn) { nc.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testserver.New(t)
			env := cli.NewEnv("queuegroup", s.ClientURL())
			t.Cleanup(func() { _ = env.Close() })
			in, err := startInstance(env, 0, "i1", 0)
			require.NoError(t, err)
			defer func() { _ = in.Stop() }()
			nc, err := nats.Connect(s.ClientURL())
			require.NoError(t, err)
			defer nc.Close()
			// The instance's stats reply is the sign the read is waiting.
			seen := make(chan struct{})
			go func() {
				for nc.Stats().InMsgs == 0 {
					<-time.After(time.Millisecond)
				}
				close(seen)
			}()
			go func() { <-seen; tc.end(nc) }()
			start := time.Now()
			_, err = ReadStats(context.Background(), nc, []string{in.ID(), "nobody"}, 10*time.Second)
			require.ErrorIs(t, err, nats.ErrConnectionClosed)
			assert.Less(t, time.Since(start), 3*time.Second)
			assert.NotErrorIs(t, nc.LastError(), nats.ErrDrainTimeout)
		})
	}
}

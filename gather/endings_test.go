package gather_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/gather"
	"reqreply/internal/cli"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
)

// answerThenHold starts one responder that sends each payload to the reply
// subject of every request, flushes, then signals heard (and sends nothing
// more): after the signal, a gather that wants more can only wait.
func answerThenHold(heard chan<- struct{}, payloads ...string) func(t *testing.T, nc *nats.Conn, subject string) {
	return func(t *testing.T, nc *nats.Conn, subject string) {
		t.Helper()
		_, err := nc.Subscribe(subject, func(m *nats.Msg) {
			for _, p := range payloads {
				if m.Respond([]byte(p)) != nil {
					return
				}
			}
			_ = nc.Flush()
			heard <- struct{}{}
		})
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
	}
}

// A connection closed while a gather waits for its next reply ends the
// gather within about one round trip, not at its deadline, in every
// variant: StopClosed, an error wrapping nats.ErrConnectionClosed, and the
// replies gathered so far kept.
func TestCloseDuringWait(t *testing.T) {
	const timeout = 10 * time.Second
	cases := []struct {
		name    string
		replies []string
		opts    []gather.Option
	}{
		{name: "before any reply"},
		{name: "after replies", replies: []string{"one", "two"}},
		{name: "after replies, stall", replies: []string{"one", "two"}, opts: []gather.Option{gather.Stall(5 * time.Second)}},
		{name: "after replies, max", replies: []string{"one", "two"}, opts: []gather.Option{gather.MaxReplies(5)}},
		{name: "after replies, sentinel", replies: []string{"one", "two"}, opts: []gather.Option{gather.Sentinel(nil)}},
	}
	for _, tc := range cases {
		for _, name := range variants.Names {
			t.Run(tc.name+"/variant="+name, func(t *testing.T) {
				srv := testserver.New(t)
				env := cli.NewEnv("multireply", srv.ClientURL())
				t.Cleanup(func() { _ = env.Close() })
				heard := make(chan struct{}, 1)
				answerThenHold(heard, tc.replies...)(t, connect(t, env, "responders"), "svc")
				nc := connect(t, env, "requester")
				v, release, err := variants.New(name, nc)
				require.NoError(t, err)
				defer func() { _ = release() }()

				s, err := v.Stream(context.Background(), "svc", nil, append(tc.opts, gather.Timeout(timeout))...)
				require.NoError(t, err)
				// The loop body hands each reply on and goes back to the
				// gather, which waits for one more that never comes; the
				// close comes from another goroutine once all are in.
				got := make(chan struct{}, len(tc.replies))
				closed := make(chan struct{})
				go func() {
					defer close(closed)
					<-heard
					for range tc.replies {
						<-got
					}
					nc.Close()
				}()
				start := time.Now()
				var replies []gather.Reply
				for r := range s.Replies() {
					replies = append(replies, r)
					got <- struct{}{}
				}
				res, err := s.Result()
				elapsed := time.Since(start)
				<-closed
				assert.Less(t, elapsed, 2*time.Second, "ended at about the deadline (%v), not at the close", timeout)
				assert.Equal(t, gather.StopClosed, res.Reason)
				assert.ErrorIs(t, err, nats.ErrConnectionClosed)
				assert.Equal(t, len(tc.replies), res.Count)
				if len(tc.replies) > 0 {
					assert.Equal(t, tc.replies, payloads(replies))
				}
			})
		}
	}
}

// A gather started while the server is away waits (its request in nats.go's
// reconnect buffer, or the inbox variant's flush); a close then ends it
// within about one round trip too.
func TestCloseWhileDisconnected(t *testing.T) {
	const timeout = 10 * time.Second
	for _, name := range variants.Names {
		t.Run("variant="+name, func(t *testing.T) {
			srv := testserver.New(t)
			env := cli.NewEnv("multireply", srv.ClientURL())
			t.Cleanup(func() { _ = env.Close() })
			nc, err := env.Connect("requester", nats.ReconnectWait(time.Hour), nats.ReconnectJitter(0, 0), nats.MaxReconnects(-1))
			require.NoError(t, err)
			v, release, err := variants.New(name, nc)
			require.NoError(t, err)
			defer func() { _ = release() }()
			testserver.Shutdown(srv)
			require.Eventually(t, func() bool { return !nc.IsConnected() && !receiver(v, nc).IsConnected() }, 30*time.Second, time.Millisecond)

			before := outMsgs(v, nc)
			done := make(chan struct{})
			var res gather.Result
			start := time.Now()
			go func() {
				defer close(done)
				res, err = gather.Gather(context.Background(), v, "svc", nil, gather.Timeout(timeout))
			}()
			// The gather is waiting: its request is in the reconnect
			// buffer, or (inbox) its inbox is subscribed and the flush
			// waits.
			require.Eventually(t, func() bool { return outMsgs(v, nc) > before || nc.NumSubscriptions() > 0 }, 5*time.Second, time.Millisecond)
			nc.Close()
			<-done
			assert.Less(t, time.Since(start), 2*time.Second, "ended at about the deadline (%v), not at the close", timeout)
			assert.Equal(t, gather.StopClosed, res.Reason)
			assert.ErrorIs(t, err, nats.ErrConnectionClosed)
		})
	}
}

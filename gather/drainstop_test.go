package gather_test

// A gather that ends while its connection drains, by any stop, in any
// variant, with replies still queued in the client: the drain must not wait
// for it (issue 20).

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/gather"
	"reqreply/internal/cli"
	"reqreply/multireply/variants"
)

// queued starts one responder that sends each payload, in order, to the
// reply subject of every request (statusMarker: a 503 status message), then
// flushes and signals on the returned channel: once it has, a flush of the
// receiver puts them all in the requester's client.
func queued(t *testing.T, nc *nats.Conn, subject string, payloads ...string) <-chan struct{} {
	t.Helper()
	sent := make(chan struct{}, 1)
	_, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if publishSequence(nc, m.Reply, payloads) == nil {
			_ = nc.Flush()
		}
		sent <- struct{}{}
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return sent
}

// connectTimed connects a requester on env with opts, and returns with it
// a function that waits for it to close and says how long after since that
// was (the test fails if it does not close within 30 s).
func connectTimed(t *testing.T, env *cli.Env, opts ...nats.Option) (*nats.Conn, func(since time.Time) time.Duration) {
	t.Helper()
	closed := make(chan time.Time, 1)
	nc, err := env.Connect("requester", append(opts, nats.ClosedHandler(func(*nats.Conn) { closed <- time.Now() }))...)
	require.NoError(t, err)
	return nc, func(since time.Time) time.Duration {
		t.Helper()
		select {
		case at := <-closed:
			t.Logf("the drain took %v", at.Sub(since))
			return at.Sub(since)
		case <-time.After(30 * time.Second):
			t.Fatal("the drain never ended")
			return 0
		}
	}
}

// Each stop, in each variant: the first reply is handed out, the others
// are queued in the client, the consumer drains the requester's
// connection, then the gather stops (in the loop body or on a queued
// message). The drain must end within a round trip or so, not at its
// DrainTimeout (cli.DrainTimeout, 5 s) with nats.ErrDrainTimeout, and what
// was queued is counted (Count + Skipped + Unread; a 503 taken as an error
// is not a message of the gather's).
func TestGatherEndedDuringDrainReleasesIt(t *testing.T) {
	const short = 500 * time.Millisecond // a deadline that passes in the loop body
	stops := []struct {
		name     string
		payloads []string
		opts     []gather.Option
		deadline bool // the context's deadline is short; the body waits it out
		// body runs on the first reply, after the drain began; true breaks.
		body func(ctx context.Context, cancel context.CancelFunc) bool
		want gather.StopReason
	}{
		{name: "deadline", deadline: true, want: gather.StopDeadline,
			body: func(ctx context.Context, _ context.CancelFunc) bool { <-ctx.Done(); return false }},
		{name: "cancel", want: gather.StopCancelled,
			body: func(_ context.Context, cancel context.CancelFunc) bool { cancel(); return false }},
		{name: "break", want: gather.StopCaller,
			body: func(context.Context, context.CancelFunc) bool { return true }},
		{name: "break after the deadline", deadline: true, want: gather.StopCaller,
			body: func(ctx context.Context, _ context.CancelFunc) bool { <-ctx.Done(); return true }},
		{name: "max", opts: []gather.Option{gather.MaxReplies(1)}, want: gather.StopMax},
		{name: "sentinel", payloads: []string{"r1", "", "r3"}, opts: []gather.Option{gather.Sentinel(nil)}, want: gather.StopSentinel},
		{name: "stall", opts: []gather.Option{gather.Stall(20 * time.Millisecond)}, want: gather.StopStalled},
		{name: "no responders", payloads: []string{"r1", statusMarker, "r3"}, want: gather.StopNoResponders},
	}
	for _, stop := range stops {
		for _, name := range variants.Names {
			t.Run(stop.name+"/variant="+name, func(t *testing.T) {
				payloads := stop.payloads
				if payloads == nil {
					payloads = []string{"r1", "r2", "r3"}
				}
				env := newEnv(t)
				rc := connect(t, env, "responders")
				sent := queued(t, rc, "svc", payloads...)
				nc, closedAfter := connectTimed(t, env)
				v, free, err := variants.New(name, nc)
				require.NoError(t, err)
				defer func() { _ = free() }()

				ctx, cancel := context.WithCancel(context.Background())
				if stop.deadline {
					ctx, cancel = context.WithTimeout(context.Background(), short)
				}
				defer cancel()
				s, err := v.Stream(ctx, "svc", nil, append([]gather.Option{gather.Timeout(time.Hour)}, stop.opts...)...)
				require.NoError(t, err)
				var drained time.Time
				for range s.Replies() {
					if !drained.IsZero() {
						continue
					}
					// The other replies are in the client, queued.
					<-sent
					require.NoError(t, rc.Flush())
					flushReceiver(t, v, nc)
					routed(t, v)
					drained = time.Now()
					require.NoError(t, nc.Drain())
					if stop.body != nil && stop.body(ctx, cancel) {
						break
					}
				}
				require.False(t, drained.IsZero(), "no reply before the stop")
				res, err := s.Result()
				t.Logf("%+v, %v", res, err)

				took := closedAfter(drained)
				assert.False(t, errors.Is(nc.LastError(), nats.ErrDrainTimeout), "the drain waited for the ended gather: %v", nc.LastError())
				assert.Less(t, took, 2*time.Second, "the drain waited for the ended gather (DrainTimeout 5 s)")

				// The drain may take the inbox away before a stop that
				// needs another message or a wait (inbox, natsext).
				if res.Reason != gather.StopClosed || name == "shared" {
					assert.Equal(t, stop.want, res.Reason, "%v", err)
				}
				replies := 0
				for _, p := range payloads {
					if p != statusMarker {
						replies++
					}
				}
				if name == "inbox" && stop.want == gather.StopMax {
					// AutoUnsubscribe(1): the server sent no other.
					replies = 1
				}
				counted := res.Count + res.Skipped + res.Unread + res.Dropped
				assert.GreaterOrEqual(t, counted, replies, "queued replies lost: %+v", res)
				assert.LessOrEqual(t, counted, len(payloads), "%+v", res)
			})
		}
	}
}

package gather_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/gather"
	"reqreply/gather/natsextgather"
	"reqreply/multireply/variants"
)

// natsext's stall gap is fixed when RequestMany is called: the wrapper
// refuses AdaptiveStall before anything is subscribed or published, and
// takes Expect and StopWhen (TestConformance runs them).
func TestNatsextRefusesAdaptiveStall(t *testing.T) {
	env := newEnv(t)
	nc := connect(t, env, "requester")
	before, subs := nc.Stats().OutMsgs, nc.NumSubscriptions()
	s, err := natsextgather.Natsext{Conn: nc}.Stream(context.Background(), "svc", nil, gather.AdaptiveStall(time.Millisecond))
	assert.Nil(t, s)
	assert.ErrorIs(t, err, nats.ErrInvalidArg)
	assert.Equal(t, before, nc.Stats().OutMsgs, "nothing published")
	assert.Equal(t, subs, nc.NumSubscriptions(), "nothing subscribed")
	for _, opt := range []gather.Option{gather.Expect("a"), gather.StopWhen(func([]gather.Reply) bool { return true })} {
		s, err := natsextgather.Natsext{Conn: nc}.Stream(context.Background(), "svc", nil, opt)
		require.NoError(t, err)
		require.NotNil(t, s)
	}
}

// A drain of the requester's connection in the middle of an Expect gather:
// the shared Mux keeps gathering on its own connection and ends when the
// last expected responder answers (StopExpected); the inbox and natsext
// variants lose their subscription to the drain and end with StopClosed,
// naming the responder that had not answered yet.
func TestExpectThroughDrain(t *testing.T) {
	for _, name := range variants.Names {
		t.Run("variant="+name, func(t *testing.T) {
			env := newEnv(t)
			release := make(chan struct{})
			rc := connect(t, env, "responders")
			_, err := rc.Subscribe("svc", func(m *nats.Msg) {
				for i, id := range []string{"a", "b"} {
					if i == 1 {
						<-release
					}
					reply := nats.NewMsg(m.Reply)
					reply.Header.Set(gather.ResponderHeader, id)
					if rc.PublishMsg(reply) != nil {
						return
					}
				}
			})
			require.NoError(t, err)
			require.NoError(t, rc.Flush())
			nc := connect(t, env, "requester")
			v, free, err := variants.New(name, nc)
			require.NoError(t, err)
			defer func() { _ = free() }()

			s, err := v.Stream(context.Background(), "svc", nil, gather.Timeout(time.Hour), gather.Expect("a", "b"))
			require.NoError(t, err)
			n := 0
			for range s.Replies() {
				if n++; n == 1 {
					require.NoError(t, nc.Drain())
					require.Eventually(t, nc.IsClosed, 30*time.Second, time.Millisecond)
					close(release)
				}
			}
			res, err := s.Result()
			if name == "shared" {
				require.NoError(t, err)
				assert.Equal(t, gather.StopExpected, res.Reason)
				assert.Nil(t, res.Missing)
				return
			}
			assert.Equal(t, gather.StopClosed, res.Reason)
			assert.Error(t, err)
			assert.Equal(t, []string{"b"}, res.Missing)
		})
	}
}

// An Expect gather whose deadline has passed before its request goes out
// (a Stream ranged late)
// ends as it would have at the deadline (StopDeadline, no error), and so
// names every expected responder missing: none answered. Before, Missing
// was nil, which reads as "all answered".
func TestExpectDeadlineBeforeRequest(t *testing.T) {
	for _, name := range variants.Names {
		t.Run("variant="+name, func(t *testing.T) {
			env := newEnv(t)
			rc := connect(t, env, "responders")
			_, err := rc.Subscribe("svc", func(m *nats.Msg) {
				reply := nats.NewMsg(m.Reply)
				reply.Header.Set(gather.ResponderHeader, "a")
				_ = rc.PublishMsg(reply)
			})
			require.NoError(t, err)
			require.NoError(t, rc.Flush())
			nc := connect(t, env, "requester")
			v, free, err := variants.New(name, nc)
			require.NoError(t, err)
			defer func() { _ = free() }()

			// The Stream is made in time, and ranged once its deadline has passed.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			s, err := v.Stream(ctx, "svc", nil, gather.Expect("a", "b"))
			require.NoError(t, err)
			<-ctx.Done()
			res, err := gather.Collect(s)
			require.NoError(t, err)
			assert.Equal(t, gather.StopDeadline, res.Reason)
			assert.Zero(t, res.Count)
			assert.Equal(t, []string{"a", "b"}, res.Missing)
		})
	}
}

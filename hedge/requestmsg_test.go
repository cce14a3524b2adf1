// RequestMsg: the caller's headers on every copy, first, hedge and retry.

package hedge_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/hedge"
	"reqreply/internal/testserver"
)

// TestRequestMsgHeadersOnEveryCopy stalls the first copy so the client
// hedges (and, under a retry policy, retries): every copy the responder
// sees carries the caller's header, each with its own deadline, and the
// caller's message is left as it was.
func TestRequestMsgHeadersOnEveryCopy(t *testing.T) {
	tests := []struct {
		name   string
		policy hedge.Policy
		stall  int // copies left unanswered before one is answered
	}{
		{"plain", hedge.Policy{}, 0},
		{"hedge", hedge.Policy{Hedge: hedge.Hedge{Delay: time.Millisecond}, Propagate: true}, 1},
		{"retry", hedge.Policy{Propagate: true, Retry: &hedge.Backoff{Base: time.Millisecond, Max: time.Millisecond, Attempt: 20 * time.Millisecond}}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testserver.New(t)
			nc, err := nats.Connect(s.ClientURL())
			require.NoError(t, err)
			defer nc.Close()
			seen := make(chan nats.Header, 16)
			n := 0
			sub, err := nc.Subscribe("charge", func(m *nats.Msg) {
				seen <- m.Header
				if n++; n > tc.stall {
					_ = m.Respond([]byte("ok"))
				}
			})
			require.NoError(t, err)
			defer sub.Unsubscribe()
			require.NoError(t, nc.Flush())

			c, err := hedge.NewClient(nc, tc.policy)
			require.NoError(t, err)
			defer c.Close()
			req := &nats.Msg{Subject: "charge", Data: []byte("10"), Header: nats.Header{"Idempotency-Key": {"k1"}}}
			ctx, cancel := context.WithTimeout(context.Background(), testserver.ReadyTimeout)
			defer cancel()
			reply, err := c.RequestMsg(ctx, req)
			require.NoError(t, err)
			assert.Equal(t, "ok", string(reply.Data))
			require.NoError(t, c.Settle(ctx))

			close(seen)
			copies := 0
			for h := range seen {
				copies++
				assert.Equal(t, "k1", h.Get("Idempotency-Key"))
				assert.Equal(t, tc.policy.Propagate, h.Get(hedge.DeadlineHeader) != "")
			}
			assert.GreaterOrEqual(t, copies, tc.stall+1) // a slow reply may draw one more retry
			assert.Equal(t, nats.Header{"Idempotency-Key": {"k1"}}, req.Header, "the caller's message changed")
		})
	}
}

// TestRequestMsgRefused: a nil message, and a context without a deadline,
// are refused before anything is sent.
func TestRequestMsgRefused(t *testing.T) {
	s := testserver.New(t)
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	c, err := hedge.NewClient(nc, hedge.Policy{})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.RequestMsg(context.Background(), nil)
	require.ErrorIs(t, err, nats.ErrInvalidArg)
	_, err = c.RequestMsg(context.Background(), &nats.Msg{Subject: "charge", Header: nats.Header{"K": {"v"}}})
	require.ErrorIs(t, err, nats.ErrInvalidArg)
	assert.Zero(t, c.Stats().Sent)
}

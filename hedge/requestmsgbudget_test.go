// RequestMsg with the caller's relative budget (TimeoutHeader): a copy
// sent later carries what is left of it, never the whole.

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

// TestRequestMsgBudgetSpent: the caller sends only a budget ("2S", as
// DeadlineAt's doc advises when clocks cannot be trusted) and the first
// copy is left unanswered; the hedge or retry goes out at least 100 ms
// later, so its budget must be at most 2 s less those 100 ms (plus
// TimeoutHeader's rounding up, 1 µs at this size). Before, every copy
// carried the whole 2 s, and a responder counting it from when it read a
// later copy gave the handler a deadline later than the caller's.
func TestRequestMsgBudgetSpent(t *testing.T) {
	const budget, delay = 2 * time.Second, 100 * time.Millisecond
	tests := []struct {
		name   string
		policy hedge.Policy
	}{
		{"hedge", hedge.Policy{Hedge: hedge.Hedge{Delay: delay}}},
		{"hedge propagate", hedge.Policy{Hedge: hedge.Hedge{Delay: delay}, Propagate: true}},
		{"retry", hedge.Policy{Retry: &hedge.Backoff{Base: time.Millisecond, Max: time.Millisecond, Attempt: delay}}},
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
				if n++; n > 1 {
					_ = m.Respond([]byte("ok"))
				}
			})
			require.NoError(t, err)
			defer sub.Unsubscribe()
			require.NoError(t, nc.Flush())

			c, err := hedge.NewClient(nc, tc.policy)
			require.NoError(t, err)
			defer c.Close()
			req := &nats.Msg{Subject: "charge", Header: nats.Header{hedge.TimeoutHeader: {"2S"}}}
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			_, err = c.RequestMsg(ctx, req)
			require.NoError(t, err)
			require.NoError(t, c.Settle(ctx))
			close(seen)

			now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
			left := func(h nats.Header) time.Duration {
				d, ok, err := hedge.DeadlineAt(nats.Header{hedge.TimeoutHeader: h.Values(hedge.TimeoutHeader)}, now)
				require.NoError(t, err)
				require.True(t, ok)
				return d.Sub(now)
			}
			copies := 0
			for h := range seen {
				if copies == 0 {
					assert.LessOrEqual(t, left(h), budget)
				} else {
					assert.LessOrEqual(t, left(h), budget-delay+time.Microsecond, "copy %d", copies)
				}
				copies++
			}
			assert.GreaterOrEqual(t, copies, 2)
			assert.Equal(t, nats.Header{hedge.TimeoutHeader: {"2S"}}, req.Header, "the caller's message changed")
		})
	}
}

// The Client's refusals before it sends anything.

package hedge_test

import (
	"math"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/hedge"
	"reqreply/internal/testserver"
)

// A Policy out of range is refused by NewClient before it subscribes,
// with nats.ErrInvalidArg; nothing is left on the connection.
func TestPolicyRefused(t *testing.T) {
	s := testserver.New(t)
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	tests := []struct {
		name string
		p    hedge.Policy
	}{
		{"negative delay", hedge.Policy{Hedge: hedge.Hedge{Delay: -time.Millisecond}}},
		{"percentile below 0", hedge.Policy{Hedge: hedge.Hedge{Adaptive: true, Percentile: -5}}},
		{"percentile 100", hedge.Policy{Hedge: hedge.Hedge{Adaptive: true, Percentile: 100}}},
		{"percentile NaN", hedge.Policy{Hedge: hedge.Hedge{Adaptive: true, Percentile: math.NaN()}}},
		{"zero backoff", hedge.Policy{Retry: &hedge.Backoff{}}},
		{"max below base", hedge.Policy{Retry: &hedge.Backoff{Base: time.Second, Max: time.Millisecond}}},
		{"negative attempt", hedge.Policy{Retry: &hedge.Backoff{Base: time.Millisecond, Max: time.Second, Attempt: -1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := hedge.NewClient(nc, tc.p)
			require.ErrorIs(t, err, nats.ErrInvalidArg)
			assert.Nil(t, c)
			assert.Zero(t, nc.NumSubscriptions())
		})
	}
}

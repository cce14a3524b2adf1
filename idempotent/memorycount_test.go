// Memory's count bound, at the bound: a lookup of a key it holds drops
// nothing.

package idempotent_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/idempotent"
	"reqreply/internal/testserver"
)

// TestMemoryFullLookup: a Memory of at most 2 keys holding 2 replays both,
// in any order, and runs the handler twice in all. Before, a copy of the
// oldest key made room for itself first, dropped its own reply, and ran the
// handler again: a second charge with the store below its bound.
func TestMemoryFullLookup(t *testing.T) {
	mem := idempotent.NewMemory(2, 0)
	e := env{servers: []*server.Server{testserver.New(t)}, store: func(*testing.T, *nats.Conn) idempotent.Store { return mem }}
	var l ledger
	ms := startMembers(t, e, 1, charger(&l, nil, nil), idempotent.Options{})
	nc := connect(t, e.servers[0])
	a, b := idempotent.NewRequest(subject, nil), idempotent.NewRequest(subject, nil)
	for _, r := range []*nats.Msg{a, b, a, b, a} {
		assert.Equal(t, "charged 1", string(request(t, nc, r).Data))
	}
	assert.Equal(t, 2, mem.Len())
	assert.Equal(t, int64(2), runs(ms))
	assert.Equal(t, int64(3), ms[0].mw.Stats().Replays)
}

// TestMemoryBoundPastBusyKey: a Memory of at most 2 keys whose oldest key
// is in progress (claimed, its reply not in) still drops the finished keys
// behind it: it holds the key in progress and at most 2 others. Before,
// eviction stopped at the key in progress, and kept every key after it.
func TestMemoryBoundPastBusyKey(t *testing.T) {
	mem := idempotent.NewMemory(2, 0)
	e := env{servers: []*server.Server{testserver.New(t)}, store: func(*testing.T, *nats.Conn) idempotent.Store { return mem }}
	var l ledger
	ms := startMembers(t, e, 1, charger(&l, nil, nil), idempotent.Options{})
	nc := connect(t, e.servers[0])

	// The oldest key, claimed as a member does whose handler still runs.
	done, _, err := mem.Begin(context.Background(), idempotent.NewKey())
	require.NoError(t, err)
	require.NotNil(t, done)
	for range 5 {
		assert.Equal(t, "charged 1", string(request(t, nc, idempotent.NewRequest(subject, nil)).Data))
	}
	assert.LessOrEqual(t, mem.Len(), 3, "the key in progress and at most 2 others")
	require.NoError(t, done(&nats.Msg{Data: []byte("late")}))
	request(t, nc, idempotent.NewRequest(subject, nil))
	assert.LessOrEqual(t, mem.Len(), 2)
	assert.Equal(t, int64(6), ms[0].mw.Stats().Runs)
}

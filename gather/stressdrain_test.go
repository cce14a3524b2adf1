package gather_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/gather"
	"reqreply/multireply/variants"
)

// Many goroutines on one Mux while its connection nc drains at a random
// moment, as on a deploy. Laws: no gather in flight is ended by the drain
// (StopClosed only for a gather refused before sending, once nc only
// flushes or has closed); every gather's stop-reason rules; Received() ==
// Σ(Count + Skipped + Dropped) + Late(); the Mux never received more than
// the responders sent; and once nc has closed and the last gather ended,
// the Mux's own connection closes without a Close.
func TestStressMuxThroughDrain(t *testing.T) {
	seed, rounds, goroutines, gathers := stressConfig(t)
	env := newEnv(t)
	const responders = 3
	rs := newStressResponders(t, connect(t, env, "responders"), "stress", responders)
	for round := range rounds {
		nc := connect(t, env, "requester")
		m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
		require.NoError(t, err)
		sentBefore := rs.total.Load()
		results := gatherThroughDrain(t, nc, m, seed, round, 1, goroutines, gathers, responders,
			func(gi, j int) string { return fmt.Sprintf("d%d.%d.%d", round, gi, j) })
		require.Eventually(t, nc.IsClosed, 30*time.Second, time.Millisecond)
		assert.False(t, errors.Is(nc.LastError(), nats.ErrDrainTimeout), "round %d: a gather held the drain up", round)
		require.Eventually(t, m.RC().IsClosed, 30*time.Second, time.Millisecond, "round %d: the Mux's connection left open", round)

		var counted int
		for _, gs := range results {
			for _, g := range gs {
				what := fmt.Sprintf("round %d gather %s: %+v, %v", round, g.id, g.res, g.err)
				switch {
				case g.res.Reason == gather.StopNone:
					assert.True(t, errors.Is(g.err, nats.ErrConnectionDraining) || errors.Is(g.err, nats.ErrConnectionClosed), what)
					continue
				case g.res.Reason == gather.StopClosed:
					assert.Zero(t, g.res.Count+g.res.Skipped+g.res.Dropped+g.res.Unread, "a gather in flight ended by the drain: "+what)
				}
				g.check(t, rs.sentFor(g.id), true)
				counted += g.res.Count + g.res.Skipped + g.res.Dropped
			}
		}
		assert.Equal(t, m.Received(), counted+m.Late(), "round %d: received = handed + skipped + dropped + late", round)
		assert.LessOrEqual(t, m.Received(), int(rs.total.Load()-sentBefore), "round %d", round)
		require.NoError(t, m.Close())
	}
}

// The inbox and natsext variants under the same random load while nc
// drains at a random moment (their gathers in flight end with StopClosed,
// and those started later are refused). Laws: no gather, however it ends,
// holds the drain up (nc closes without nats.ErrDrainTimeout), and every
// gather's stop-reason rules.
func TestStressVariantsThroughDrain(t *testing.T) {
	seed, rounds, goroutines, gathers := stressConfig(t)
	env := newEnv(t)
	const responders = 3
	rs := newStressResponders(t, connect(t, env, "responders"), "stress", responders)
	for _, name := range []string{"inbox", "natsext"} {
		t.Run("variant="+name, func(t *testing.T) {
			for round := range rounds {
				nc := connect(t, env, "requester")
				v, free, err := variants.New(name, nc)
				require.NoError(t, err)
				results := gatherThroughDrain(t, nc, v, seed, round, 2, goroutines, gathers, responders,
					func(gi, j int) string { return fmt.Sprintf("%s.d%d.%d.%d", name, round, gi, j) })
				require.Eventually(t, nc.IsClosed, 30*time.Second, time.Millisecond)
				assert.False(t, errors.Is(nc.LastError(), nats.ErrDrainTimeout), "round %d: a gather held the drain up", round)
				require.NoError(t, free())

				for _, gs := range results {
					for _, g := range gs {
						if g.res.Reason == gather.StopNone {
							// Refused when made: nc only flushed or had closed.
							assert.True(t, errors.Is(g.err, nats.ErrConnectionDraining) || errors.Is(g.err, nats.ErrConnectionClosed),
								"round %d gather %s: %v", round, g.id, g.err)
							continue
						}
						g.check(t, rs.sentFor(g.id), true)
					}
				}
			}
		})
	}
}

// gatherThroughDrain runs round's goroutines × gathers random gathers on v,
// each goroutine its own in turn, and drains nc as one of them, picked at
// random, starts; results[gi] are goroutine gi's gathers, named by id. The
// random streams are the seed's, told apart by round, goroutine and tag.
func gatherThroughDrain(t *testing.T, nc *nats.Conn, v gather.Variant, seed uint64, round int, tag uint64, goroutines, gathers, responders int, id func(gi, j int) string) [][]*stressGather {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, uint64(round)|tag<<40))
	drainAt := 1 + rng.IntN(goroutines*gathers)
	var started atomic.Int64
	var wg sync.WaitGroup
	results := make([][]*stressGather, goroutines)
	for gi := range goroutines {
		grng := rand.New(rand.NewPCG(seed, uint64(round)<<32|uint64(gi)|tag<<40))
		wg.Go(func() {
			for j := range gathers {
				if started.Add(1) == int64(drainAt) {
					assert.NoError(t, nc.Drain())
				}
				g := &stressGather{id: id(gi, j)}
				g.run(grng, v, responders)
				results[gi] = append(results[gi], g)
			}
		})
	}
	wg.Wait()
	return results
}

package gather_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
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

// Randomized stress tests of the conservation laws (see Result and Mux) and
// the stop-reason rules, with counts taken on the responder side. The seed
// picks every gather's options, breaks, cancels and closes; it is printed
// when a test fails and set with -stress.seed or MULTIREPLY_STRESS_SEED.
// The default run is short; -stress.long or MULTIREPLY_STRESS_LONG=1 runs a
// longer one:
//
//	go test -race -run Stress ./gather -args -stress.long -stress.seed 42
var (
	stressSeed = flag.Uint64("stress.seed", 0, "seed of the randomized stress tests (0: from the clock)")
	stressLong = flag.Bool("stress.long", false, "run the randomized stress tests longer")
)

// stressConfig returns the seed and the size of a stress run.
func stressConfig(t *testing.T) (seed uint64, rounds, goroutines, gathers int) {
	t.Helper()
	seed = *stressSeed
	if env := os.Getenv("MULTIREPLY_STRESS_SEED"); seed == 0 && env != "" {
		n, err := strconv.ParseUint(env, 10, 64)
		require.NoError(t, err, "MULTIREPLY_STRESS_SEED")
		seed = n
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stress seed %d: rerun with -args -stress.seed %d or MULTIREPLY_STRESS_SEED=%d", seed, seed, seed)
		}
	})
	if *stressLong || os.Getenv("MULTIREPLY_STRESS_LONG") == "1" {
		return seed, 20, 32, 40
	}
	return seed, 3, 8, 8
}

// stressResponders serves n responders on subject. A request's payload
// "<id> <k> <sentinel>" asks each responder for k replies, then an empty
// payload if sentinel is 1. sent counts, per request id, every reply
// published; idle waits until every request received has been answered.
type stressResponders struct {
	nc       *nats.Conn
	subs     []*nats.Subscription
	mu       sync.Mutex
	sent     map[string]int
	total    atomic.Int64
	inFlight atomic.Int64
}

func newStressResponders(t *testing.T, nc *nats.Conn, subject string, n int) *stressResponders {
	t.Helper()
	r := &stressResponders{nc: nc, sent: make(map[string]int)}
	for range n {
		sub, err := nc.Subscribe(subject, r.handle)
		require.NoError(t, err)
		// A burst must reach the gather, not be dropped here.
		require.NoError(t, sub.SetPendingLimits(-1, -1))
		r.subs = append(r.subs, sub)
	}
	require.NoError(t, nc.Flush())
	return r
}

func (r *stressResponders) handle(m *nats.Msg) {
	r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	f := strings.Fields(string(m.Data))
	if len(f) != 3 {
		return
	}
	k, _ := strconv.Atoi(f[1])
	payloads := make([][]byte, 0, k+1)
	for range k {
		payloads = append(payloads, []byte("x"))
	}
	if f[2] == "1" {
		payloads = append(payloads, nil)
	}
	for _, p := range payloads {
		if m.Respond(p) != nil {
			return
		}
		r.mu.Lock()
		r.sent[f[0]]++
		r.mu.Unlock()
		r.total.Add(1)
	}
}

// settle waits until every request the requesters published has reached
// the responders and been answered, and the replies are at the server.
func (r *stressResponders) settle(t *testing.T, requesters ...*nats.Conn) {
	t.Helper()
	for _, nc := range requesters {
		if !nc.IsClosed() {
			require.NoError(t, nc.Flush())
		}
	}
	require.NoError(t, r.nc.Flush())
	require.Eventually(t, func() bool {
		for _, s := range r.subs {
			if n, _, _ := s.Pending(); n > 0 {
				return false
			}
		}
		return r.inFlight.Load() == 0
	}, 30*time.Second, time.Millisecond)
	require.NoError(t, r.nc.Flush())
}

func (r *stressResponders) sentFor(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent[id]
}

// stressGather is one random gather and what came of it.
type stressGather struct {
	id         string
	max        int
	stall      time.Duration
	sentinel   bool
	pending    int // PendingLimits messages; 0: default
	breakAfter int // 0: never
	cancelAt   int // 0: never
	handed     int
	broke      bool
	cancelled  bool
	res        gather.Result
	err        error
}

// run makes and runs one random gather on v.
func (g *stressGather) run(rng *rand.Rand, v gather.Variant, responders int) {
	k := rng.IntN(6)
	timeout := time.Duration(1+rng.IntN(40)) * time.Millisecond
	opts := []gather.Option{gather.Timeout(timeout)}
	if rng.IntN(2) == 0 {
		g.max = 1 + rng.IntN(responders*(k+1)+1)
		opts = append(opts, gather.MaxReplies(g.max))
	}
	if rng.IntN(3) == 0 {
		g.stall = time.Duration(1+rng.IntN(int(timeout/time.Millisecond))) * time.Millisecond / 2
		if g.stall > 0 && g.stall < timeout {
			opts = append(opts, gather.Stall(g.stall))
		} else {
			g.stall = 0
		}
	}
	if rng.IntN(3) == 0 {
		g.sentinel = true
		opts = append(opts, gather.Sentinel(nil))
	}
	if v.Name() != "natsext" && rng.IntN(3) == 0 {
		g.pending = 1 + rng.IntN(4)
		opts = append(opts, gather.PendingLimits(g.pending, gather.DefaultPendingBytes))
	}
	if rng.IntN(4) == 0 {
		g.breakAfter = 1 + rng.IntN(3)
	}
	if rng.IntN(4) == 0 {
		g.cancelAt = 1 + rng.IntN(3)
	}
	sentinel := 0
	if g.sentinel || rng.IntN(4) == 0 {
		sentinel = 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := v.Stream(ctx, "stress", []byte(fmt.Sprintf("%s %d %d", g.id, k, sentinel)), opts...)
	if err != nil {
		g.err = err
		return
	}
	for range s.Replies() {
		g.handed++
		if g.handed == g.cancelAt {
			cancel()
			g.cancelled = true
		}
		if g.handed == g.breakAfter {
			g.broke = true
			break
		}
	}
	g.res, g.err = s.Result()
}

// check applies the stop-reason rules and the per-gather conservation law.
func (g *stressGather) check(t *testing.T, sent int, muxClosed bool) {
	t.Helper()
	res, err := g.res, g.err
	what := fmt.Sprintf("gather %s (max %d, stall %v, sentinel %v, pending %d, break %d, cancel %d): %+v, %v",
		g.id, g.max, g.stall, g.sentinel, g.pending, g.breakAfter, g.cancelAt, res, err)
	if res.Reason == gather.StopNone {
		// Refused when made or registered: only a closed Mux may do that.
		assert.True(t, muxClosed && errors.Is(err, gather.ErrMuxClosed), what)
		return
	}
	assert.Equal(t, g.handed, res.Count, what)
	if g.max > 0 {
		assert.LessOrEqual(t, res.Count, g.max, what)
	}
	assert.LessOrEqual(t, res.Count+res.Skipped+res.Dropped+res.Unread, sent, "more counted than sent: "+what)
	if res.Dropped > 0 {
		assert.ErrorIs(t, err, nats.ErrSlowConsumer, what)
	} else {
		assert.Equal(t, res.Reason.Normal(), err == nil, what)
	}
	assert.Equal(t, g.broke, res.Reason == gather.StopCaller, what)
	switch res.Reason {
	case gather.StopMax:
		assert.Equal(t, g.max, res.Count, what)
	case gather.StopSentinel:
		assert.True(t, g.sentinel, what)
		assert.Positive(t, res.Skipped, what)
	case gather.StopStalled:
		assert.Positive(t, g.stall, what)
		assert.Positive(t, res.Count, what)
	case gather.StopCancelled:
		assert.True(t, g.cancelled, what)
		assert.ErrorIs(t, err, context.Canceled, what)
	case gather.StopClosed:
		assert.True(t, muxClosed, what)
	case gather.StopDeadline, gather.StopCaller:
	default:
		t.Errorf("unexpected stop: %s", what)
	}
}

// Many goroutines on one Mux with random options, breaks, cancels and, in
// some rounds, a Close mid-run. Laws checked: every gather's stop-reason
// rules; Received() == Σ(Count + Skipped + Dropped) + Late() for the Mux;
// and, when the Mux was not closed, Received() equals the replies the
// responders sent: no message lost, none counted twice.
func TestStressMux(t *testing.T) {
	seed, rounds, goroutines, gathers := stressConfig(t)
	env := newEnv(t)
	const responders = 3
	rs := newStressResponders(t, connect(t, env, "responders"), "stress", responders)
	nc := connect(t, env, "requester")
	for round := range rounds {
		m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
		require.NoError(t, err)
		rng := rand.New(rand.NewPCG(seed, uint64(round)))
		closeAt := -1
		if rng.IntN(3) == 0 {
			closeAt = rng.IntN(goroutines * gathers)
		}
		sentBefore := rs.total.Load()
		var started atomic.Int64
		var wg sync.WaitGroup
		results := make([][]*stressGather, goroutines)
		for gi := range goroutines {
			grng := rand.New(rand.NewPCG(seed, uint64(round)<<32|uint64(gi)))
			wg.Go(func() {
				for j := range gathers {
					if started.Add(1) == int64(closeAt) {
						assert.NoError(t, m.Close())
					}
					g := &stressGather{id: fmt.Sprintf("%d.%d.%d", round, gi, j)}
					g.run(grng, m, responders)
					results[gi] = append(results[gi], g)
				}
			})
		}
		wg.Wait()
		rs.settle(t, m.RC())
		closed := closeAt >= 0
		if !closed {
			require.NoError(t, m.RC().Flush())
		}
		// Wait for the Mux's handler to have routed what reached the client.
		require.Eventually(t, func() bool { n, _, _ := m.Sub().Pending(); return n <= 0 }, 30*time.Second, time.Millisecond)

		var counted int
		for _, gs := range results {
			for _, g := range gs {
				g.check(t, rs.sentFor(g.id), closed)
				counted += g.res.Count + g.res.Skipped + g.res.Dropped
			}
		}
		assert.Equal(t, m.Received(), counted+m.Late(), "round %d: received = handed + skipped + dropped + late", round)
		if !closed {
			assert.Equal(t, int(rs.total.Load()-sentBefore), m.Received(), "round %d: every reply sent reached the Mux", round)
		}
		require.NoError(t, m.Close())
	}
}

// Every variant under the same random load, concurrently on one
// connection: the stop-reason rules, and no gather counting more than its
// request's responders sent.
func TestStressVariants(t *testing.T) {
	seed, rounds, goroutines, gathers := stressConfig(t)
	env := newEnv(t)
	const responders = 3
	rs := newStressResponders(t, connect(t, env, "responders"), "stress", responders)
	nc := connect(t, env, "requester")
	for _, v := range newVariants(t, nc) {
		t.Run("variant="+v.Name(), func(t *testing.T) {
			for round := range rounds {
				var wg sync.WaitGroup
				results := make([][]*stressGather, goroutines)
				for gi := range goroutines {
					grng := rand.New(rand.NewPCG(seed, uint64(round)<<32|uint64(gi)))
					wg.Go(func() {
						for j := range gathers {
							g := &stressGather{id: fmt.Sprintf("%s.%d.%d.%d", v.Name(), round, gi, j)}
							g.run(grng, v, responders)
							results[gi] = append(results[gi], g)
						}
					})
				}
				wg.Wait()
				rs.settle(t, receiver(v, nc))
				for _, gs := range results {
					for _, g := range gs {
						g.check(t, rs.sentFor(g.id), false)
					}
				}
			}
			assert.Equal(t, baseline(v), nc.NumSubscriptions(), "subscriptions left behind")
		})
	}
}

// One responder sends a burst of 40 replies to each
// request and the gathers use PendingLimits of 1 or 2, so replies are
// dropped while, and after, gathers end. Every reply is counted exactly
// once: handed out, skipped, dropped or late.
func TestMuxCountsEveryReplyOfABurst(t *testing.T) {
	const burst, gathers = 40, 50
	env := newEnv(t)
	rc := connect(t, env, "responders")
	var sent atomic.Int64
	_, err := rc.Subscribe("svc", func(m *nats.Msg) {
		for range burst {
			if m.Respond([]byte("x")) == nil {
				sent.Add(1)
			}
		}
	})
	require.NoError(t, err)
	require.NoError(t, rc.Flush())
	m, err := gather.NewMux(connect(t, env, "requester"), gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	defer func() { _ = m.Close() }()

	var counted atomic.Int64
	var wg sync.WaitGroup
	for i := range gathers {
		wg.Go(func() {
			res, _ := gather.Gather(context.Background(), m, "svc", nil, gather.Timeout(time.Second), gather.Stall(time.Millisecond), gather.PendingLimits(1+i%2, gather.DefaultPendingBytes))
			counted.Add(int64(res.Count + res.Skipped + res.Dropped))
		})
	}
	wg.Wait()
	require.NoError(t, rc.Flush())
	require.Eventually(t, func() bool { return sent.Load() == burst*gathers }, 30*time.Second, time.Millisecond)
	require.NoError(t, rc.Flush())
	require.NoError(t, m.RC().Flush())
	require.Eventually(t, func() bool { n, _, _ := m.Sub().Pending(); return n == 0 }, 30*time.Second, time.Millisecond)
	assert.Equal(t, burst*gathers, m.Received())
	assert.Equal(t, m.Received(), int(counted.Load())+m.Late())
}

package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The randomized stress tests: Load at high concurrency with tiny timeouts,
// slow replies, members draining and joining mid-run, retry, one and two
// queue groups, each run checked against the conservation laws (load.go)
// and against counts the responders keep themselves. Every parameter comes
// from one seed, printed when a test fails; timing still varies between
// runs, which is the point. Short by default; -stress.long (or
// REQREPLY_STRESS_LONG=1) runs many more rounds and requests.
var (
	stressSeed = flag.Uint64("stress.seed", 0, "seed of the randomized stress tests (0: $REQREPLY_STRESS_SEED, else the clock)")
	stressLong = flag.Bool("stress.long", false, "run the long randomized stress and soak tests (or REQREPLY_STRESS_LONG=1)")
)

// longRun reports whether the long versions of the stress and soak tests
// were asked for.
func longRun() bool { return *stressLong || os.Getenv("REQREPLY_STRESS_LONG") == "1" }

// seedFor returns the seed of t's randomized test and logs it if t fails,
// with how to run the same parameters again.
func seedFor(t *testing.T) uint64 {
	t.Helper()
	seed := *stressSeed
	if seed == 0 {
		if v := os.Getenv("REQREPLY_STRESS_SEED"); v != "" {
			var err error
			seed, err = strconv.ParseUint(v, 10, 64)
			require.NoError(t, err, "REQREPLY_STRESS_SEED")
		}
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d: run again with -stress.seed=%d (or REQREPLY_STRESS_SEED=%d)", seed, seed, seed)
		}
	})
	return seed
}

// stressParams is one randomized Load run.
type stressParams struct {
	groups, perGroup     int
	requests, concurrent int
	timeout              time.Duration
	retry                bool
	slowShare            float64 // share of requests a member holds up to 1.5 timeouts
	at                   int     // the request before which one member drains and one joins
}

func (p stressParams) String() string {
	return fmt.Sprintf("groups=%d×%d requests=%d in-flight=%d timeout=%v retry=%v slow=%.2f change-at=%d",
		p.groups, p.perGroup, p.requests, p.concurrent, p.timeout, p.retry, p.slowShare, p.at)
}

// TestStressLoad runs Load with random parameters, for one and two groups,
// with and without retry, and checks every run against the laws.
func TestStressLoad(t *testing.T) {
	seed := seedFor(t)
	rng := rand.New(rand.NewPCG(seed, 0x51ce))
	rounds, requests := 1, 1500
	if longRun() {
		rounds, requests = 10, 20000
	}
	for round := range rounds {
		for _, groups := range []int{1, 2} {
			for _, retry := range []bool{false, true} {
				p := stressParams{
					groups:     groups,
					perGroup:   2 + rng.IntN(3),
					requests:   requests/2 + rng.IntN(requests),
					concurrent: 64 + rng.IntN(193),
					timeout:    time.Duration(15+rng.IntN(86)) * time.Millisecond,
					retry:      retry,
					slowShare:  rng.Float64() * 0.01,
				}
				p.at = p.requests/4 + rng.IntN(p.requests/4)
				t.Run(fmt.Sprintf("round=%d/groups=%d/retry=%v", round, groups, retry), func(t *testing.T) {
					stressLoad(t, p, rng.Uint64())
				})
			}
		}
	}
}

// stressLoad is one randomized run: p.groups queue groups of p.perGroup
// members on Subject; just before request p.at, one member of a random
// group drains its subscription and a new member joins a random group.
// Each member holds a random p.slowShare of its requests for up to 1.5
// timeouts (late replies, timeouts, retries), and records which requests it
// handled: the responders' side of the count.
func stressLoad(t *testing.T, p stressParams, seed uint64) {
	t.Logf("%v", p)
	env := newEnv(t)
	// handled[g][n]: how often group g handled request n, over all attempts.
	handled := make([][]atomic.Int32, p.groups)
	for g := range handled {
		handled[g] = make([]atomic.Int32, p.requests+1)
	}
	var mu sync.Mutex // guards members and groupOf, which Before changes
	var members []*Member
	groupOf := map[string]int{}
	join := func(g int, name string) error {
		// Each member's handler runs on one goroutine: a source of its own.
		rng := rand.New(rand.NewPCG(seed, uint64(len(groupOf))))
		m, err := join(env, Subject, fmt.Sprintf("g%d", g), name, MemberOptions{Work: func(req []byte) error {
			n, err := strconv.Atoi(string(req))
			if err != nil || n < 1 || n > p.requests {
				return fmt.Errorf("request %q: not a request number", req)
			}
			handled[g][n].Add(1)
			if rng.Float64() < p.slowShare {
				work(time.Duration(rng.Int64N(int64(p.timeout) * 3 / 2)))
			}
			return nil
		}})
		if err != nil {
			return err
		}
		mu.Lock()
		members = append(members, m)
		groupOf[name] = g
		mu.Unlock()
		return nil
	}
	for g := range p.groups {
		for i := range p.perGroup {
			require.NoError(t, join(g, fmt.Sprintf("g%d-%d", g, i+1)))
		}
	}
	nc, err := env.Connect("requester")
	require.NoError(t, err)

	left := make(chan error, 1)
	var leftErr error
	leftDone := false
	res, err := Load(context.Background(), nc, LoadConfig{
		Subject: Subject, Requests: p.requests, Concurrency: p.concurrent, Timeout: p.timeout,
		Replies: p.groups, Retry: p.retry, PerRequest: true, At: p.at,
		Before: func(ctx context.Context) error {
			// A member of group 0 leaves (the group keeps at least one, so
			// no request finds nobody) while requests are in flight, and a
			// member joins the last group.
			mu.Lock()
			victim := members[0]
			mu.Unlock()
			go func() { left <- victim.Leave(context.Background()) }()
			return join(p.groups-1, fmt.Sprintf("g%d-new", p.groups-1))
		},
		Settle: func(ctx context.Context) error {
			// The member that left may still be answering what it had
			// taken: its replies count only once its leave is over.
			select {
			case leftErr = <-left:
				leftDone = true
			case <-ctx.Done():
				return ctx.Err()
			}
			mu.Lock()
			all := slices.Clone(members)
			mu.Unlock()
			return settleAll(all...)(ctx)
		},
	})
	require.NoError(t, err)
	if !leftDone {
		leftErr = <-left
	}
	require.NoError(t, leftErr)
	t.Logf("answered %d, timed out %d, retried %d, replies %d, duplicates %d, late %d, repeated %d, exact %v",
		res.Answered, res.TimedOut, res.Retried, res.Replies, res.Duplicates, res.Late, res.Repeated, res.Exact())

	// The requester's own laws.
	checkLaws(t, res, p.groups)
	assert.Zero(t, res.Failed, "no request can find nobody")
	assert.Zero(t, res.Unsent)
	assert.Zero(t, res.Strays)
	assert.Zero(t, res.Errors)
	if !p.retry {
		assert.Zero(t, res.Retried)
	}
	if p.groups == 1 {
		assert.Zero(t, res.Repeated, "one reply completes an attempt: nothing to repeat")
	}

	// Against the responders: every reply they sent is in one bucket.
	var sent int64
	for _, m := range members {
		sent += m.Answered()
	}
	if res.Unsettled {
		t.Log("members unsettled: replies law not checked")
	} else {
		checkSent(t, res, sent)
	}
	// Every counted reply comes from a member of a group that handled
	// that request, at most as often as the group handled it.
	for i, who := range res.PerRequest {
		n := i + 1
		per := make([]int32, p.groups)
		for _, name := range who {
			g, ok := groupOf[name]
			require.True(t, ok, "request %d: a reply from %q, no member", n, name)
			per[g]++
		}
		for g := range per {
			require.LessOrEqual(t, per[g], handled[g][n].Load(), "request %d: group %d credited with more replies than it handled", n, g)
		}
	}
	// "Exactly once" means each group handled each request exactly once,
	// retries included.
	if res.Exact() {
		for g := range handled {
			for n := 1; n <= p.requests; n++ {
				require.EqualValues(t, 1, handled[g][n].Load(), "exact, yet group %d handled request %d %d times", g, n, handled[g][n].Load())
			}
		}
	}
}

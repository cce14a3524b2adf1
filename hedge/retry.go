// Retry with exponential backoff and full jitter, as in Marc Brooker,
// "Exponential Backoff And Jitter", AWS Architecture Blog, 2015, and the
// Amazon Builders' Library article "Timeouts, retries, and backoff with
// jitter": wait a random time in [0, min(cap, base·2^n)) before retry n+1,
// so that callers who failed together do not come back together, and stop
// at the caller's overall deadline.
//
// SAFE ONLY FOR IDEMPOTENT HANDLERS when retrying a timeout: the first copy
// may have run and only its reply been lost or late. A no-responders status
// is always safe to retry: nobody received the request.

package hedge

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Backoff is how a Client retries a request that failed with no responders
// (nats.ErrNoResponders) or timed out (nats.ErrTimeout). Other errors are
// returned at once. Only for idempotent handlers.
type Backoff struct {
	// Base is the ceiling of the first wait (> 0): retry n waits a random
	// time in [0, min(Max, Base·2^(n-1))). tail's rolling restart uses 1 ms,
	// the admission rows 100 µs.
	Base time.Duration
	// Max caps the ceiling (≥ Base). tail's rolling restart uses 20 ms, the
	// admission rows 5 ms.
	Max time.Duration
	// Attempt bounds each attempt, so a request lost with a member that
	// went away is sent again before the overall deadline; 0: an attempt
	// lasts until the overall deadline, and only no responders is retried.
	Attempt time.Duration
	// Rand returns a number in [0, 1) for the jitter; nil: math/rand/v2.
	Rand func() float64
}

// SeededRand returns a Backoff.Rand that draws from a PCG generator seeded
// with seed, safe for concurrent use: the same seed gives the same jitter
// sequence (in the order the callers draw, which the scheduler decides).
func SeededRand(seed uint64) func() float64 {
	rng := rand.New(rand.NewPCG(seed, 0xbac0ff))
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return rng.Float64()
	}
}

// Wait returns the wait before retry n (n ≥ 1; less counts as 1):
// r·min(Max, Base·2^(n-1)), for r in [0, 1) from Rand ("full jitter").
// Base·2^(n-1) is compared with Max without computing it, so it cannot
// overflow, whatever Max (time.Duration(math.MaxInt64) for no cap).
func (b Backoff) Wait(n int, r float64) time.Duration {
	n = max(n, 1)
	ceiling := b.Max
	if n-1 < 63 && b.Base > 0 && b.Base <= b.Max>>(n-1) {
		ceiling = b.Base << (n - 1)
	}
	return time.Duration(r * float64(ceiling))
}

// ErrBudgetSpent is wrapped, with nats.ErrTimeout and the last attempt's
// error, by a retried request that stops because the next retry would start
// after the overall deadline.
var ErrBudgetSpent = errors.New("retry budget spent")

// retry is Client.Request under Policy.Retry: attempts on call id, each
// bounded by Backoff.Attempt within ctx's deadline, with a jittered wait
// between them. It never waits past the deadline: when the next wait would
// end after it, it returns at once with an error wrapping ErrBudgetSpent,
// nats.ErrTimeout and the last attempt's error (nats.ErrNoResponders or
// nats.ErrTimeout). Retries share the call, so a late reply to an earlier
// attempt is taken as well as the newest one's.
func (c *Client) retry(ctx context.Context, subject string, data []byte, id uint64, cl *call) (*nats.Msg, error) {
	b := *c.policy.Retry // in range: NewClient checked it (Policy.Check)
	rnd := b.Rand
	if rnd == nil {
		rnd = rand.Float64
	}
	deadline, _ := ctx.Deadline()
	copies := 0
	for n := 1; ; n++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if b.Attempt > 0 {
			actx, cancel = context.WithTimeout(ctx, b.Attempt)
		}
		kind := CopyFirst
		if n > 1 {
			kind = CopyRetry
		}
		msg, sent, err := c.attempt(actx, deadline, subject, data, id, cl, copies, kind)
		cancel()
		copies += sent
		switch {
		case err == nil:
			return msg, nil
		case !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrTimeout):
			return nil, err
		case ctx.Err() != nil:
			// The overall deadline itself has passed.
			return nil, err
		}
		wait := b.Wait(n, rnd())
		if !c.now().Add(wait).Before(deadline) {
			return nil, fmt.Errorf("request %q: %w after %d attempts: %w (last attempt: %w)",
				subject, ErrBudgetSpent, n, nats.ErrTimeout, err)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("request %q: %w", subject, err)
		}
		c.retries.Add(1)
	}
}

// Sleep waits d, or until ctx ends: then its error wraps nats.ErrTimeout
// when ctx's deadline passed, is ctx's cause when that wraps
// nats.ErrConnectionClosed or ErrClientClosed (a Client's request ends
// so when its connection or the client closes), else ctx.Err(). It is a
// Client's default wait between retries (WithClock).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ended(ctx)
	}
}

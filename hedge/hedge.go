// Hedged requests, as in Jeffrey Dean and Luiz André Barroso, "The Tail at
// Scale", Communications of the ACM 56(2), 2013: "defer sending a secondary
// request until the first request has been outstanding for more than the
// 95th-percentile expected latency for this class of requests", then take
// whichever reply comes first.
//
// SAFE ONLY FOR IDEMPOTENT HANDLERS. Both copies may run to completion: a
// hedged "charge the card" charges twice. Offer hedging only for reads and
// for writes that carry their own idempotency key.

package hedge

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Hedge is when a Client sends a second copy of a request that has had no
// reply (Client.Request). Its zero value never hedges. Only for idempotent
// handlers: the second copy does not cancel the first, so both may run.
type Hedge struct {
	// Delay is how long a request waits for its reply before the hedge is
	// sent: the fixed delay, and with Adaptive the delay used until the
	// client has MinSamples latencies. 0 and not Adaptive: no hedging.
	Delay time.Duration
	// Adaptive hedges after the running Percentile (95 unless set) of the
	// client's last DefaultWindow latencies instead, as Dean and Barroso
	// do: about 5% of requests get a hedge, whatever the latencies are.
	Adaptive bool
	// Percentile, in (0, 100), for Adaptive; 0 means 95.
	Percentile float64
}

// Enabled reports whether h sends hedges at all.
func (h Hedge) Enabled() bool { return h.Delay > 0 || h.Adaptive }

// MinSamples is how many latencies an adaptive hedge needs before it trusts
// their percentile: 20 (so a p95 rests on at least one sample above it).
const MinSamples = 20

// hedgeDelay returns how long the next request waits before its hedge, and
// false when the policy does not hedge.
func (c *Client) hedgeDelay() (time.Duration, bool) {
	h := c.policy.Hedge
	if !h.Enabled() {
		return 0, false
	}
	if h.Adaptive {
		p := h.Percentile
		if !(p > 0 && p < 100) { // also NaN
			p = 95
		}
		if d, ok := c.window.Percentile(p); ok {
			return d, true
		}
	}
	return h.Delay, true
}

// DefaultWindow is how many recent latencies an adaptive hedge looks at:
// 256, a few hundred milliseconds of the tail demo's traffic, so the delay
// follows a change in the members within a fraction of a second.
const DefaultWindow = 256

// Window keeps the last n latencies of a client's requests, each from the
// first copy's publish to the reply taken, for the running percentile of an
// adaptive hedge. Safe for concurrent use.
type Window struct {
	mu     sync.Mutex
	ring   []time.Duration
	next   int
	filled bool
	sorted []time.Duration // scratch for Percentile
}

// NewWindow returns a Window of the last n (≥ 1) latencies.
func NewWindow(n int) *Window {
	n = max(n, 1)
	return &Window{ring: make([]time.Duration, n), sorted: make([]time.Duration, 0, n)}
}

// Add records one latency.
func (w *Window) Add(d time.Duration) {
	w.mu.Lock()
	w.ring[w.next] = d
	w.next++
	if w.next == len(w.ring) {
		w.next, w.filled = 0, true
	}
	w.mu.Unlock()
}

// Percentile returns the p-th percentile (nearest rank) of the latencies in
// the window, and false while it holds fewer than MinSamples.
func (w *Window) Percentile(p float64) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.next
	if w.filled {
		n = len(w.ring)
	}
	if n < MinSamples {
		return 0, false
	}
	w.sorted = append(w.sorted[:0], w.ring[:n]...)
	slices.Sort(w.sorted)
	return Percentile(w.sorted, p), true
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted (ascending)
// by the nearest-rank method: the sorted element ⌈p/100·n⌉ − 1. 0 for no
// samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// p·n/100 in floating point can land a hair above a whole number.
	rank := int(math.Ceil(p*float64(len(sorted))/100 - 1e-9))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

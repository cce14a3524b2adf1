// Admission control by interest: a busy responder takes itself out of the
// queue group, so the server stops picking it, and comes back when it has
// room.
//
// The idea is load shedding by the responder itself, as in "Using load
// shedding to avoid overload" (Amazon Builders' Library, David Yanacek)
// and the concurrency limits of Netflix's concurrency-limits library, put
// in NATS terms: a NATS queue group picks among subscribed members at
// random, not by load (nats-server's queue-subscriber selection), so the
// only signal a member can give the server is whether it is subscribed.
//
// The cost is subscription churn: a SUB and an UNSUB every time a member
// crosses the limit, each a protocol message the server processes and, on
// a cluster, propagates to every other node as a change of interest. Until
// a leave arrives there, another node may still route a request to the
// member's node, which no longer has it and drops the request: the caller
// times out (tail's BenchmarkInterestChange measures how often), so on a
// cluster callers must retry on timeout, which needs an idempotent
// handler. And if every member is out at once, a request finds no member
// at all and fails with nats.ErrNoResponders: the limit times the members
// must exceed the requests in flight, or callers must retry (Backoff).

package hedge

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// Admission is admission control by interest around a responder's plain
// nats.MsgHandler h: each request delivered counts as in progress from its
// delivery until Done is called for it, and with a Limit k > 0 a responder
// holding k requests in progress leaves its queue group. It drains its
// subscription, which sends the UNSUB at once, so the server stops routing
// new requests to it, and still delivers every request the server had
// already routed here before the UNSUB arrived: leaving loses nothing. Below
// k again (Done), it subscribes again. A handler that does its work before
// it returns calls Done on return (defer a.Done()); one that hands requests
// to workers calls it when the work ends. Safe for concurrent use. Make one
// with NewAdmission, then Join.
type Admission struct {
	limit     int
	subscribe func(nats.MsgHandler) (*nats.Subscription, error)
	h         nats.MsgHandler

	mu         sync.Mutex
	current    *nats.Subscription   // the subscription in the group, nil while out
	subs       []*nats.Subscription // every subscription that may still deliver
	inProgress int
	closed     bool            // Close: out for good
	idle       []chan struct{} // closed when inProgress next reaches 0 (WaitIdle)

	joins  atomic.Int64 // SUBs sent: the first join and every rejoin
	leaves atomic.Int64 // UNSUBs sent at the limit
	// churn sees each leave and rejoin (Observe), nil for none.
	churn func(leave bool)
}

// Observe makes f see the responder's churn: f(true) for each leave at the
// limit (its UNSUB sent), f(false) for each rejoin below it (its SUB sent),
// for metrics (reqreply/otelnats counts the leaves). f runs with the
// admission's lock held, on the goroutine of the request that crossed the
// limit (leave) or of its Done (rejoin): it must not block or call back into
// a. Call it before Join; nil removes it.
func (a *Admission) Observe(f func(leave bool)) {
	a.mu.Lock()
	a.churn = f
	a.mu.Unlock()
}

// NewAdmission returns admission control with limit (0: never leave; the
// requests in progress are still counted, for WaitIdle) around h, for the
// subscription subscribe makes with the handler it is given, for instance
// func(mh nats.MsgHandler) (*nats.Subscription, error) {
// return nc.QueueSubscribe(subject, queue, mh) }, which may wrap mh in
// middleware of its own (readiness probes, answered without counting). It
// does not subscribe: Join does.
func NewAdmission(limit int, subscribe func(nats.MsgHandler) (*nats.Subscription, error), h nats.MsgHandler) *Admission {
	return &Admission{limit: limit, subscribe: subscribe, h: h}
}

// Join subscribes, through check when it is not nil (a first join that
// confirms the subscription, such as reqreply/denials' SubscribeChecked,
// given the subscribe to call), else directly. The error is check's or the
// subscribe's. A rejoin after a leave is the same subscription again, and
// goes unchecked.
func (a *Admission) Join(check func(subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error)) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.join(check)
}

// join is Join with a.mu held.
func (a *Admission) join(check func(func() (*nats.Subscription, error)) (*nats.Subscription, error)) error {
	// Counted before the SUB leaves, so whoever sees the server's interest
	// rise sees the count.
	a.joins.Add(1)
	subscribe := func() (*nats.Subscription, error) { return a.subscribe(a.take) }
	var sub *nats.Subscription
	var err error
	if check != nil {
		sub, err = check(subscribe)
	} else {
		sub, err = subscribe()
	}
	if err != nil {
		a.joins.Add(-1)
		return err
	}
	// Forget subscriptions that have finished draining.
	live := a.subs[:0]
	for _, s := range a.subs {
		if s.IsValid() {
			live = append(live, s)
		}
	}
	a.subs = append(live, sub)
	a.current = sub
	return nil
}

// take is the subscription's handler: it counts the request in progress,
// leaves the group at the limit, and hands the request to h.
func (a *Admission) take(msg *nats.Msg) {
	a.mu.Lock()
	a.inProgress++
	a.admit()
	a.mu.Unlock()
	a.h(msg)
}

// admit leaves the group when the requests in progress reach the limit.
// a.mu is held.
func (a *Admission) admit() {
	if a.limit == 0 || a.current == nil || a.inProgress < a.limit {
		return
	}
	// Drain sends the UNSUB and keeps delivering what was routed before it.
	// Its error is nats.ErrConnectionClosed or ErrBadSubscription when the
	// responder is going away anyway: nothing to undo.
	// Counted before the UNSUB leaves, so whoever sees the server's
	// interest drop sees the count.
	a.leaves.Add(1)
	if err := a.current.Drain(); err != nil {
		a.leaves.Add(-1)
	} else if a.churn != nil {
		a.churn(true)
	}
	a.current = nil
}

// Done ends one request in progress. Out of the group and below the limit
// again, the responder subscribes again, unless Close was called; a failed
// SUB (the connection is closing) leaves it out.
func (a *Admission) Done() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inProgress--
	if a.inProgress == 0 {
		for _, c := range a.idle {
			close(c)
		}
		a.idle = nil
	}
	if a.limit == 0 || a.current != nil || a.closed || a.inProgress >= a.limit {
		return
	}
	if a.join(nil) == nil && a.churn != nil {
		a.churn(false)
	}
}

// WaitIdle returns once no request is in progress, or with ctx's error
// when it ends first (leaving nothing behind).
func (a *Admission) WaitIdle(ctx context.Context) error {
	a.mu.Lock()
	if a.inProgress == 0 {
		a.mu.Unlock()
		return nil
	}
	idle := make(chan struct{})
	a.idle = append(a.idle, idle)
	a.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		// Given up: the wait goes, or a busy responder would keep one per
		// call until it is next idle.
		a.mu.Lock()
		a.idle = slices.DeleteFunc(a.idle, func(c chan struct{}) bool { return c == idle })
		a.mu.Unlock()
		return ctx.Err()
	}
}

// Close takes the responder out for good: it no longer rejoins, and it
// returns every subscription that may still deliver, for the caller to
// drain (and wait for) as it leaves.
func (a *Admission) Close() []*nats.Subscription {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	subs := a.subs
	a.subs, a.current = nil, nil
	return subs
}

// Churn returns the SUBs sent (the first join and every rejoin) and the
// UNSUBs sent at the limit.
func (a *Admission) Churn() (joins, leaves int64) { return a.joins.Load(), a.leaves.Load() }

// Held returns what the admission holds: the subscriptions that may still
// deliver (the current one and those still draining) and the WaitIdle
// calls waiting.
func (a *Admission) Held() (subs, waiters int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.subs), len(a.idle)
}

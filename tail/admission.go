// Admission control by interest: a busy member takes itself out of the
// queue group, so the server stops picking it, and comes back when it has
// room.

package main

// admit is admission control's half in the subscription callback, called
// with m.mu held after a request is counted in progress. With Admit k > 0, a
// member holding k requests in progress leaves the queue group: it drains
// its subscription, which sends the UNSUB at once, so the server stops
// routing new requests to it, and still delivers every request the server
// had already routed here before the UNSUB arrived. Those are answered like
// any other: leaving loses nothing.
//
// The idea is load shedding by the member itself, as in "Using load
// shedding to avoid overload" (Amazon Builders' Library, David Yanacek)
// and the concurrency limits of Netflix's concurrency-limits library, put
// in NATS terms: a NATS queue group picks among subscribed members at
// random, not by load (nats-server's queue-subscriber selection), so the
// only signal a member can give the server is whether it is subscribed.
//
// The cost is subscription churn: a SUB and an UNSUB every time a member
// crosses k, each a protocol message the server processes and, on a cluster,
// propagates to every other node as a change of interest. Until a leave
// arrives there, another node may still route a request to the member's
// node, which no longer has it and drops the request: the caller times out
// (BenchmarkInterestChange measures how often), so on a cluster callers
// must retry on timeout, which needs an idempotent handler. And if every
// member is out at once, a request finds no member at all and fails with
// nats.ErrNoResponders: k times the members must exceed the requests in
// flight, or callers must retry (retry.go).
func (m *Member) admit() {
	if m.opts.Admit == 0 || m.current == nil || m.inProgress < m.opts.Admit {
		return
	}
	// Drain sends the UNSUB and keeps delivering what was routed before it.
	// Its error is nats.ErrConnectionClosed or ErrBadSubscription when the
	// member is going away anyway: nothing to undo.
	// Counted before the UNSUB leaves, so whoever sees the server's
	// interest drop sees the count.
	m.leaves.Add(1)
	if err := m.current.Drain(); err != nil {
		m.leaves.Add(-1)
	}
	m.current = nil
}

// readmit is admission control's other half, in the worker, with m.mu held
// after a request has finished: a member out of the group with fewer than k
// requests in progress subscribes again. A member that is stopping stays
// out. A failed SUB (the connection is closing) leaves it out; Stop cleans
// up.
func (m *Member) readmit() {
	if m.opts.Admit == 0 || m.current != nil || m.stopping || m.inProgress >= m.opts.Admit {
		return
	}
	_ = m.join(nil)
}

// Package hedge is a tail-latency client for NATS request-reply, and the
// responder-side patterns that go with it: the tools of Dean and
// Barroso's "The Tail at Scale" put in NATS terms.
//
// The requester side is a Client (NewClient, from a *nats.Conn), which
// sends every request with a Policy:
//   - Hedge: a second copy of a request that has had no reply after a
//     delay, fixed or the running p95 of recent latencies; the first
//     reply wins (Client.Request);
//   - Propagate: the request's absolute deadline in DeadlineHeader
//     (SetDeadline, DeadlineOf, Expired), so responders skip work nobody
//     waits for;
//   - Retry: a Backoff with full jitter after no responders or a timeout,
//     until the overall deadline.
//
// Hedges and retries are only for idempotent handlers: every copy may run.
// Every reply comes to one wildcard inbox of the client's, so it also sees
// and counts the replies nobody takes any more (Client.Stats).
//
// The responder side is admission control by interest (Admission):
// middleware around a plain nats.MsgHandler that takes a busy queue-group
// member out of its group and back.
//
// Hardening attaches from outside: prompt permission denials through
// WithChecks (reqreply/denials' ClientChecks), readiness probes by wrapping
// the handler Admission subscribes (reqreply/probe's Handler); tracing and
// metrics through WithObserver (each copy before it leaves, and which won)
// and Admission.Observe (reqreply/otelnats provides both). The package
// imports only the standard library and github.com/nats-io/nats.go, so its
// directory can be copied alone into another module.
//
// A hedged request:
//
//	c, err := hedge.NewClient(nc, hedge.Policy{Hedge: hedge.Hedge{Delay: 10 * time.Millisecond}})
//	...
//	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
//	defer cancel()
//	msg, err := c.Request(ctx, "greet.joe", nil)
package hedge

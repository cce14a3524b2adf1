// Variant 3, natsext: orbit.go's RequestMany wrapped to the same Result, and
// where it differs.

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/synadia-io/orbit.go/natsext"
)

// Natsext is the scatter-gather of Synadia's orbit.go natsext package
// (RequestManyMsg, v0.1.3), wrapped to take the same options and return the
// same Result as Inbox and Mux. It is the library to reach for when one
// dependency is better than code of your own; know how it differs:
//
//   - It ends silently at the deadline, at a stall and on a cancelled
//     context: the iterator just stops. The wrapper infers the reason from
//     the context, the counts and the clock.
//   - Its inbox comes from nc.NewRespInbox, under the subscription nats.go
//     keeps for nc.Request: on a connection that has made any Request, every
//     reply reaches the client twice (nc.Stats().InMsgs doubles).
//   - The subscription is made and the request published when RequestMany
//     is called, but released only by ranging the iterator: one that is
//     never ranged keeps its subscription until the connection closes, and
//     so does a call whose publish fails (a request over the max payload).
//     The wrapper calls it only in Replies and refuses a payload over the
//     max payload first, so a never-ranged Stream holds nothing; a request
//     that only its headers push over the limit still leaks the inbox.
//   - A slow consumer ends its iteration with nats.ErrSlowConsumer, and its
//     pending limits cannot be set (PendingLimits is rejected here).
//   - A drain of the connection ends it silently too; the wrapper reports
//     StopClosed with nats.ErrConnectionDraining.
type Natsext struct {
	// Conn is the connection that publishes and receives; not nil.
	Conn *nats.Conn
}

// Name returns "natsext".
func (Natsext) Name() string { return "natsext" }

// Stream checks subject and opts like the other variants (errors wrap
// nats.ErrBadSubject or nats.ErrInvalidArg; PendingLimits is an
// nats.ErrInvalidArg here) and returns a Stream whose Replies call
// natsext.RequestManyMsg with the equivalent options and yield its replies.
func (v Natsext) Stream(ctx context.Context, subject string, data []byte, opts ...Option) (*Stream, error) {
	c, err := newConfig(ctx, v.Conn, subject, data, opts)
	if err != nil {
		return nil, err
	}
	if c.pendingSet {
		return nil, fmt.Errorf("gather %q: natsext has no pending limits to set: %w", subject, nats.ErrInvalidArg)
	}
	nc := v.Conn
	return newStream(func(yield func(Reply) bool) (Result, error) {
		start, deadline, err := begin(ctx, c)
		if err != nil {
			return notSent(subject, "before the request", start, deadline, err)
		}
		res := Result{Deadline: deadline.Sub(start)}
		// natsext takes its deadline from the context.
		gctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()

		// natsext's own options; the sentinel is wrapped to note that it hit.
		var sentinelHit bool
		var xopts []natsext.RequestManyOpt
		if c.max > 0 {
			xopts = append(xopts, natsext.RequestManyMaxMessages(c.max))
		}
		if c.stall > 0 {
			xopts = append(xopts, natsext.RequestManyStall(c.stall))
		}
		if c.sentinel != nil {
			xopts = append(xopts, natsext.RequestManySentinel(func(m *nats.Msg) bool {
				sentinelHit = c.sentinel(m)
				return sentinelHit
			}))
		}
		msg := &nats.Msg{Subject: subject, Data: data, Header: c.header}
		replies, err := natsext.RequestManyMsg(gctx, nc, msg, xopts...)
		if err != nil {
			return notSent(subject, "publish", start, deadline, err)
		}

		// Range natsext's iterator; it yields an error only for failures.
		var iterErr error
		stopped := false
		for m, err := range replies {
			if err != nil {
				iterErr = err
				break
			}
			if isNoResponders(m) {
				iterErr = nats.ErrNoResponders
				break
			}
			res.Count++
			if !yield(newReply(m, time.Since(start))) {
				stopped = true
				break
			}
		}
		res.Elapsed = time.Since(start)

		// natsext says nothing of why it stopped: infer it, the conditions
		// the other variants check first, first.
		fail := func(reason StopReason, err error) (Result, error) {
			res.Reason = reason
			return res, fmt.Errorf("gather %q: %s after %d replies: %w", subject, reason, res.Count, err)
		}
		switch {
		case stopped:
			res.Reason = StopCaller
		case errors.Is(iterErr, nats.ErrNoResponders):
			return fail(StopNoResponders, nats.ErrNoResponders)
		case errors.Is(iterErr, context.Canceled):
			return fail(StopCancelled, context.Canceled)
		case errors.Is(iterErr, nats.ErrConnectionClosed), errors.Is(iterErr, nats.ErrConnectionDraining):
			return fail(StopClosed, iterErr)
		case iterErr != nil:
			return fail(StopFailed, iterErr)
		case sentinelHit:
			res.Reason = StopSentinel
		case c.max > 0 && res.Count >= c.max:
			res.Reason = StopMax
		case nc.IsClosed():
			return fail(StopClosed, nats.ErrConnectionClosed)
		case nc.IsDraining():
			// natsext ends silently when a drain closes its subscription.
			return fail(StopClosed, nats.ErrConnectionDraining)
		case ctx.Err() == context.Canceled:
			return fail(StopCancelled, context.Canceled)
		case !time.Now().Before(deadline):
			res.Reason = StopDeadline
		case c.stall > 0:
			res.Reason = StopStalled
		default:
			res.Reason = StopDeadline
		}
		return res, nil
	}), nil
}

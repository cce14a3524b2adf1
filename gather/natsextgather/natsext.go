// Variant 3, natsext: orbit.go's RequestMany wrapped to the same Result, and
// where it differs.

package natsextgather

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/synadia-io/orbit.go/natsext"

	"reqreply/gather"
)

// Natsext is the scatter-gather of Synadia's orbit.go natsext package
// (RequestManyMsg, v0.1.4), wrapped to take the same options and return the
// same Result as gather.Inbox and gather.Mux. It is the library to reach
// for when one dependency is better than code of your own; know how it
// differs:
//
//   - It ends silently at the deadline, at a stall and on a cancelled
//     context: the iterator just stops. The wrapper infers the reason from
//     the context, the counts and the clock, and checks the context and the
//     clock itself before it hands out each reply.
//   - It neither flushes its inbox subscription nor watches its publish,
//     so a denial by the server's permissions looks like silence until
//     the deadline. With Denials set, the wrapper checks the inbox prefix
//     first (one round trip, see checkRespInbox; skipped while the
//     connection is down) and watches the publish
//     (Denials.WatchPublish): a denial ends the gather within one round
//     trip with an error wrapping nats.ErrPermissionViolation that names
//     the subject.
//   - Its inbox comes from nc.NewRespInbox (which honours
//     nats.CustomInboxPrefix), under the subscription nats.go
//     keeps for nc.Request: on a connection that has made any Request, every
//     reply reaches the client twice (nc.Stats().InMsgs doubles).
//   - The subscription is made and the request published when RequestMany
//     is called, but released only by ranging the iterator: one that is
//     never ranged keeps its subscription until the connection closes, and
//     so does a call whose publish fails. The wrapper calls it only in
//     Replies, and refuses first every publish failure it can detect
//     (headers the server does not support, a closed connection or one that
//     only flushes, payload and headers over the max payload), so it leaves
//     nothing behind.
//   - A slow consumer ends its iteration with nats.ErrSlowConsumer, and its
//     pending limits cannot be set (PendingLimits is rejected here).
//   - Its stall gap is fixed when it is called: AdaptiveStall is rejected
//     here (nats.ErrInvalidArg). Expect and StopWhen are applied by the
//     wrapper to each reply (gather.Prepared.Take), as MaxReplies is.
//   - Its subscription is on nc, so a drain of nc unsubscribes it at once: a
//     gather in flight ends (StopClosed, nats.ErrConnectionDraining, the
//     replies so far kept), and one started during a drain is refused
//     (nats.ErrConnectionDraining). Use the Mux to gather through a drain.
//   - Used alone, natsext holds a drain of nc up: nats.go then refuses
//     natsext's own unsubscribe and waits for its subscription's pending
//     count to reach 0, and natsext reads with NextMsgWithContext, which
//     returns an ended context's error before it looks at what is queued.
//     A gather that ends during a drain (deadline, cancel, break, no
//     responders, ...) with replies queued or on their way leaves them
//     unread, and the drain waits out its DrainTimeout and fails
//     (nats.ErrDrainTimeout), losing them. So the wrapper applies
//     MaxReplies and the sentinel itself, and once natsext has returned
//     while nc drains, it reads natsext's subscription (m.Sub of a reply;
//     if natsext read none, by ranging natsext again on a context that has
//     not ended) and discards what is there (Result.Unread) and what still
//     comes, until the drain removes it. A gather that had read no reply
//     may so return up to about a round trip after its stop.
type Natsext struct {
	// Conn is the connection that publishes and receives; not nil.
	Conn *nats.Conn
	// Denials, if not nil, makes a denied inbox or publish end the gather
	// at once (see gather.Denials); nil: at its deadline.
	Denials gather.Denials
}

// Name returns "natsext".
func (Natsext) Name() string { return "natsext" }

// Stream checks subject and opts like the other variants (errors wrap
// nats.ErrBadSubject or nats.ErrInvalidArg; PendingLimits and
// AdaptiveStall are an nats.ErrInvalidArg here) and returns a Stream whose Replies call
// natsext.RequestManyMsg with the equivalent options and yield its replies.
func (v Natsext) Stream(ctx context.Context, subject string, data []byte, opts ...gather.Option) (*gather.Stream, error) {
	p, err := gather.Prepare(ctx, v.Conn, subject, data, opts...)
	if err != nil {
		return nil, err
	}
	if p.PendingLimitsSet() {
		return nil, fmt.Errorf("gather %q: natsext has no pending limits to set: %w", subject, nats.ErrInvalidArg)
	}
	if p.AdaptiveStallSet() {
		return nil, fmt.Errorf("gather %q: natsext's stall is fixed when it is called, it cannot adapt: %w", subject, nats.ErrInvalidArg)
	}
	nc := v.Conn
	return gather.NewStream(func(yield func(gather.Reply) bool) (gather.Result, error) {
		start, deadline, err := p.Begin(ctx)
		if err != nil {
			return p.NotSent("before the request", start, deadline, err)
		}
		// natsext subscribes before it publishes and keeps the subscription
		// when the publish fails: refuse here whatever the publish would
		// refuse, as late as possible.
		if err := p.Publishable(nc); err != nil {
			return p.NotSent("publish", start, deadline, err)
		}
		res := gather.Result{Deadline: deadline.Sub(start)}
		// natsext takes its deadline from the context; a denial of the
		// request's publish cancels it too, with the violation as cause.
		dctx, cancelDeadline := context.WithDeadline(ctx, deadline)
		defer cancelDeadline()
		gctx, cancel := context.WithCancelCause(dctx)
		defer cancel(nil)

		// natsext subscribes its inbox without a flush, so a denial of it
		// would come back only to the connection's error handler. Its
		// inbox name is made inside natsext, but any response inbox of
		// this connection is as allowed as another (the server's
		// permissions are by subject, and they all share the prefix and
		// depth): with Denials, subscribing one first with
		// Denials.SubscribeChecked (a round trip) and releasing it proves
		// natsext's will be allowed, or ends the gather with the server's
		// violation.
		// While the connection is down the check cannot be made, and the
		// request waits in nats.go's reconnect buffer: it is skipped (a
		// denial then reaches natsext's NextMsg, nats.PermissionErrOnSubscribe).
		if v.Denials != nil && nc.Status() == nats.CONNECTED {
			if err := checkRespInbox(gctx, v.Denials, nc); err != nil {
				return p.NotSent("subscribe", start, deadline, err)
			}
		}

		// The publish is watched (with Denials): nats.go reports a denied
		// publish only to the connection's error handler; the watch ends
		// the gather with it within one round trip.
		if v.Denials != nil {
			stopWatch := v.Denials.WatchPublish(nc, subject, cancel)
			defer stopWatch()
		}

		// natsext's own stall. MaxReplies and the sentinel are applied here,
		// so that every stop on a reply is the wrapper's.
		var xopts []natsext.RequestManyOpt
		if stall := p.Stall(); stall > 0 {
			xopts = append(xopts, natsext.RequestManyStall(stall))
		}
		// natsext reads with the gather's context until the end; then, if
		// nc drains, leftBehind may range it again on a live one.
		xctx := &rearmable{ctx: gctx}
		msg := &nats.Msg{Subject: subject, Data: data, Header: p.Header()}
		replies, err := natsext.RequestManyMsg(xctx, nc, msg, xopts...)
		if err != nil {
			return p.NotSent("publish", start, deadline, err)
		}
		// natsext's subscription, from its first reply (m.Sub).
		var xsub *nats.Subscription
		left := sync.OnceValue(func() int { return leftBehind(ctx, nc, xctx, replies, xsub) })
		defer left() // also when the consumer's loop body panics

		// Range natsext's iterator; it yields an error only for failures.
		var (
			iterErr error
			decided bool
			reason  gather.StopReason
			stopErr error
		)
		for m, err := range replies {
			if err != nil {
				iterErr = err
				break
			}
			if xsub == nil {
				xsub = m.Sub
			}
			// The clock and the caller's context, not natsext's timing,
			// say whether the gather is still on; MaxReplies and the
			// sentinel are the wrapper's: the rules of every variant.
			if reason, decided, stopErr = p.Take(ctx, &res, m, start, deadline, yield); decided {
				break
			}
		}
		res.Unread = left()
		if decided {
			return p.End(res, reason, start, stopErr)
		}

		// natsext says nothing of why it stopped: infer it, the conditions
		// the other variants check first, first. A denial cancelled its
		// context: that is the reason.
		if cause := context.Cause(gctx); errors.Is(cause, nats.ErrPermissionViolation) {
			return p.End(res, gather.StopFailed, start, cause)
		}
		switch {
		case errors.Is(iterErr, nats.ErrNoResponders):
			return p.End(res, gather.StopNoResponders, start, nats.ErrNoResponders)
		case errors.Is(iterErr, context.Canceled):
			return p.End(res, gather.StopCancelled, start, context.Canceled)
		case errors.Is(iterErr, nats.ErrConnectionClosed), errors.Is(iterErr, nats.ErrConnectionDraining):
			return p.End(res, gather.StopClosed, start, iterErr)
		case iterErr != nil:
			return p.End(res, gather.StopFailed, start, iterErr)
		case nc.IsClosed():
			return p.End(res, gather.StopClosed, start, nats.ErrConnectionClosed)
		case nc.IsDraining():
			// natsext ends silently when a drain closes its subscription.
			return p.End(res, gather.StopClosed, start, nats.ErrConnectionDraining)
		case ctx.Err() == context.Canceled:
			return p.End(res, gather.StopCancelled, start, context.Canceled)
		case !time.Now().Before(deadline):
			return p.End(res, gather.StopDeadline, start, nil)
		case p.Stall() > 0:
			return p.End(res, gather.StopStalled, start, nil)
		}
		return p.End(res, gather.StopDeadline, start, nil)
	}), nil
}

// leftBehind is the end of a natsext gather, once natsext has returned:
// while nc drains, nats.go refused natsext's unsubscribe and waits for its
// subscription's pending count to reach 0, so what is left there is read
// and thrown away, and how many replies were pending is returned (Unread).
// sub is natsext's subscription, from a reply; if natsext ended before it
// read one (its context ended, a no-responders status, a slow consumer),
// its iterator is ranged again on a context that has not ended, which
// reads the same subscription: until the first reply, which gives sub, or
// until the drain has removed the subscription (about a round trip after
// the drain began) or the connection has closed. Then a goroutine discards
// what is pending and what still comes, as the inbox variant's does.
func leftBehind(ctx context.Context, nc *nats.Conn, xctx *rearmable, replies iter.Seq2[*nats.Msg, error], sub *nats.Subscription) (unread int) {
	if !nc.IsDraining() {
		// natsext's unsubscribe was accepted (a connection that drains
		// never goes back), or the connection has closed.
		return 0
	}
	if sub == nil {
		xctx.rearm(context.WithoutCancel(ctx))
		for again := true; again; {
			again = false
			for m, err := range replies {
				if err == nil {
					sub, unread = m.Sub, 1
				}
				// A slow consumer's error comes once, then the messages.
				again = errors.Is(err, nats.ErrSlowConsumer)
				break
			}
		}
		if sub == nil {
			return 0
		}
	}
	if n, _, err := sub.Pending(); err == nil {
		unread += n
	}
	if err := sub.Unsubscribe(); errors.Is(err, nats.ErrConnectionDraining) {
		go gather.Discard(nc, sub)
	}
	return unread
}

// rearmable is the context natsext is given: the gather's, until rearm
// replaces it. natsext reads its subscription with NextMsgWithContext,
// which returns an ended context's error before it looks at what is
// queued; its iterator may be ranged again, and reads the same
// subscription then. So a range on a rearmed context reads what natsext
// left there. natsext reads Deadline once, when called: the gather's
// deadline, so it adds no timeout of its own.
type rearmable struct {
	mu  sync.Mutex
	ctx context.Context
}

func (r *rearmable) cur() context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ctx
}

func (r *rearmable) rearm(ctx context.Context) {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
}

func (r *rearmable) Deadline() (time.Time, bool) { return r.cur().Deadline() }
func (r *rearmable) Done() <-chan struct{}       { return r.cur().Done() }
func (r *rearmable) Err() error                  { return r.cur().Err() }
func (r *rearmable) Value(key any) any           { return r.cur().Value(key) }

// checkRespInbox subscribes a fresh response inbox of nc (nc.NewRespInbox,
// the kind natsext uses) with d.SubscribeChecked and releases it: nil if
// the server allowed it, else an error wrapping nats.ErrPermissionViolation
// naming that inbox, or the flush's error (ctx's, nats.ErrTimeout, a closed
// connection).
func checkRespInbox(ctx context.Context, d gather.Denials, nc *nats.Conn) error {
	inbox := nc.NewRespInbox()
	sub, err := d.SubscribeChecked(ctx, nc, inbox, "", func() (*nats.Subscription, error) {
		return nc.SubscribeSync(inbox)
	})
	if err != nil {
		return err
	}
	return sub.Unsubscribe()
}

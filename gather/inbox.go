// Variant 1, inbox: a fresh inbox per request, subscribed, flushed, then the
// request, then a NextMsg loop. The teaching version.

package gather

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Inbox is the teaching variant of scatter-gather: each request gets a fresh
// inbox of its own, subscribed, flushed, then used as the reply subject.
// It costs a SUB, a round trip (the flush) and an UNSUB per request, and
// nats.go's SubscribeSync allocates a channel of the connection's
// SyncQueueLen (65,536 by default: 512 KiB) each time; use the shared
// variant (Mux) for many requests on one connection.
//
// With Denials set, permission denials end a gather within one round trip,
// with an error wrapping nats.ErrPermissionViolation (and the hook's
// ErrDenied) whose text is the server's and names the subject, on any
// connection: the inbox is subscribed with Denials.SubscribeChecked (the
// flush the variant pays anyway, then a check for a violation on that exact
// inbox), and the request's publish is watched with Denials.WatchPublish
// (nats.go reports a denied publish only to the connection's error handler,
// asynchronously, and the server sends nothing else: without the watch it
// looks like silence until the deadline, which is how a gather without
// Denials ends). The inbox comes from nc.NewInbox, which honours
// nats.CustomInboxPrefix, so a user allowed only its own prefix can gather.
//
// Its subscription is on Conn, so a drain of Conn unsubscribes it at once:
// a gather in flight ends with StopClosed and the replies so far, and one
// started while Conn drains is refused (nats.ErrConnectionDraining), as a
// subscribe is then. A gather that ends while Conn drains never holds the
// drain up: what is left in its subscription is discarded. Use the Mux to
// gather through a drain.
//
// The inbox comes from nc.NewInbox ("_INBOX.<nuid>"), not nc.NewRespInbox:
// a response inbox falls under the subscription nats.go keeps for
// nc.Request ("_INBOX.<nuid>.*"), so once the connection has made any
// Request, every reply would reach the client twice, once per subscription.
type Inbox struct {
	// Conn is the connection that publishes and receives; not nil.
	Conn *nats.Conn
	// Denials, if not nil, makes a denied subscription or publish end the
	// gather at once (see Denials); nil: at its deadline.
	Denials Denials
}

// Name returns "inbox".
func (Inbox) Name() string { return "inbox" }

// Stream checks subject and opts (errors wrap nats.ErrBadSubject or
// nats.ErrInvalidArg) and returns a Stream whose Replies, when ranged:
//  1. subscribe (synchronously) to a new inbox, without AutoUnsubscribe:
//     nats.go counts the server's no-responders status against its limit
//     and drops a subscription that reaches it locally, without an UNSUB,
//     while the server does not count the status and would keep the inbox
//     subscribed for good (one subscription more on the server for each
//     gather with MaxReplies(1) that met no responders);
//  2. flush, so the server has the subscription before the request goes
//     out (on one connection the server would read the SUB first anyway;
//     the flush also bounds the wait for a server that stopped answering,
//     and brings back a denial of the subscription: Denials.SubscribeChecked);
//  3. publish the request with the inbox as its reply subject, watching
//     for a denial of that publish (Denials.WatchPublish);
//  4. read replies with NextMsgWithContext until a stop condition;
//  5. unsubscribe, on every way out: one UNSUB, after which the server
//     stops sending, and the client's and the server's subscription counts
//     are back where they were.
func (v Inbox) Stream(ctx context.Context, subject string, data []byte, opts ...Option) (*Stream, error) {
	c, err := newConfig(ctx, v.Conn, subject, data, opts)
	if err != nil {
		return nil, err
	}
	nc := v.Conn
	return newStream(func(yield func(Reply) bool) (Result, error) {
		start, deadline, err := begin(ctx, c)
		if err != nil {
			return notSent(c, subject, "before the request", start, deadline, err)
		}
		// The gather's context: its deadline, and a cause when the server
		// denies the request's publish (see below).
		dctx, cancelDeadline := context.WithDeadline(ctx, deadline)
		defer cancelDeadline()
		gctx, cancel := context.WithCancelCause(dctx)
		defer cancel(nil)

		// Steps 1 and 2: a fresh inbox, subscribed before the request is
		// sent so no reply can arrive before we listen, then flushed
		// (Denials.SubscribeChecked): the server confirms the subscription,
		// or its -ERR for a denied one comes back before the PONG, and the
		// gather ends here with that error instead of waiting out its
		// deadline in silence.
		inbox := nc.NewInbox()
		in := &syncInbox{ctx: gctx, nc: nc}
		sub, err := subscribeFlushed(gctx, v.Denials, nc, inbox, func() (*nats.Subscription, error) {
			sub, err := nc.SubscribeSync(inbox)
			if err != nil {
				return nil, err
			}
			in.sub = sub
			if err := sub.SetPendingLimits(c.pendingMsgs, c.pendingBytes); err != nil {
				in.finish()
				return nil, err
			}
			return sub, nil
		})
		if err != nil {
			if in.sub != nil {
				in.finish()
			}
			return notSent(c, subject, "subscribe", start, deadline, err)
		}
		in.sub = sub
		fail := func(step string, err error) (Result, error) {
			in.finish()
			return notSent(c, subject, step, start, deadline, err)
		}

		// Step 3: one request, the inbox as its reply subject. nats.go
		// reports a denied publish only to the connection's error handler,
		// asynchronously; the watch (with Denials) hands it to this gather,
		// whose wait then ends within one round trip with it
		// (syncInbox.check).
		if v.Denials != nil {
			stopWatch := v.Denials.WatchPublish(nc, subject, cancel)
			defer stopWatch()
		}
		msg := &nats.Msg{Subject: subject, Reply: inbox, Data: data, Header: c.header}
		if err := nc.PublishMsg(msg); err != nil {
			return fail("publish", err)
		}

		// Steps 4 and 5: replies until a stop condition; collect calls
		// in.finish, which unsubscribes, on every way out.
		return collect(ctx, c, start, deadline, in, subject, yield)
	}), nil
}

// syncInbox reads one gather's replies from its synchronous subscription.
type syncInbox struct {
	ctx   context.Context // the caller's, with the gather's deadline
	nc    *nats.Conn
	sub   *nats.Subscription
	drop  int // the last count read from the subscription
	ended bool
}

func (s *syncInbox) next(until time.Time) (*nats.Msg, error) {
	ctx := s.ctx
	// A reply already waiting in the client arrived within the stall gap,
	// however slowly the consumer came back for it: take it without the
	// stall's shorter wait (the gather's deadline still applies, checked
	// by collect against the clock).
	if n, _, err := s.sub.Pending(); err == nil && n > 0 {
		m, err := s.sub.NextMsgWithContext(ctx)
		return m, s.check(err)
	}
	if d, ok := ctx.Deadline(); !ok || until.Before(d) {
		// The stall gap: a shorter wait inside the gather's deadline.
		wctx, cancel := context.WithDeadline(ctx, until)
		defer cancel()
		m, err := s.sub.NextMsgWithContext(wctx)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, errWaitOver
		}
		return m, s.check(err)
	}
	m, err := s.sub.NextMsgWithContext(ctx)
	return m, s.check(err)
}

// check returns the server's permissions violation when the watch on the
// request's publish ended the wait (the gather's context's cause), notes the dropped count when nats.go reports a slow consumer, and
// names a drain as the reason when the connection's drain took the
// subscription away.
func (s *syncInbox) check(err error) error {
	if err != nil {
		// A denied publish ends the wait with the server's violation.
		if cause := context.Cause(s.ctx); errors.Is(cause, nats.ErrPermissionViolation) {
			return cause
		}
	}
	switch {
	case errors.Is(err, nats.ErrSlowConsumer):
		s.dropped()
	case (errors.Is(err, nats.ErrBadSubscription) || errors.Is(err, nats.ErrConnectionClosed)) && s.nc.IsDraining():
		return fmt.Errorf("%w (the drain unsubscribed the inbox)", nats.ErrConnectionDraining)
	}
	return err
}

func (s *syncInbox) dropped() int {
	// Once the subscription is gone (a closed connection, a drain)
	// it has no count: keep the last one read.
	if n, err := s.sub.Dropped(); err == nil {
		s.drop = n
	}
	return s.drop
}

// finish unsubscribes (step 5) and returns the dropped and unread counts.
// While the connection drains nats.go refuses the unsubscribe and drains the
// subscription itself, which ends only once nothing is pending in it: a
// gather that stopped with replies unread would hold the drain up to its
// timeout. So then a goroutine discards what is pending and what still
// comes, until nats.go removes the subscription (at most until the drain
// ends and closes the connection).
func (s *syncInbox) finish() (dropped, unread int) {
	if s.ended {
		return s.drop, 0
	}
	s.ended = true
	dropped = s.dropped()
	if n, _, err := s.sub.Pending(); err == nil {
		unread = n
	}
	if err := s.sub.Unsubscribe(); errors.Is(err, nats.ErrConnectionDraining) {
		go Discard(s.nc, s.sub)
	}
	return dropped, unread
}

// Discard reads and throws away what reaches sub until sub or nc is gone:
// the end of a gather that stopped while nc drains. nats.go then refuses
// the unsubscribe (nats.ErrConnectionDraining) and drains the subscription
// itself, which ends only once nothing is pending in it; without a reader,
// replies left there would hold the drain up to its timeout. Run it in a
// goroutine of its own; it returns when nats.go has removed sub (at most
// when the drain ends and closes nc).
func Discard(nc *nats.Conn, sub *nats.Subscription) {
	for !nc.IsClosed() {
		_, err := sub.NextMsg(time.Second)
		if errors.Is(err, nats.ErrBadSubscription) || errors.Is(err, nats.ErrConnectionClosed) {
			return
		}
	}
}

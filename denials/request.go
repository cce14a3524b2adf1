// Request: a request with its own inbox, whose permission denial ends it
// within one round trip.

package denials

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Request sends msg as a request on nc and returns the first reply, waiting
// until ctx ends; it is nats.go's RequestWithContext with its own inbox, so
// that a permission denial ends it within one round trip (see the comment
// on the dispatcher in dispatch.go). The inbox is nc.NewInbox(), which honours
// nats.CustomInboxPrefix; the subscription is made for this request,
// limited to two messages (replyInboxMax) and removed on return, on the
// server too, however the request ends: one SUB and one UNSUB per request
// more than nats.go's shared mux sends, at no measurable cost on one
// server (BenchmarkRequest: about 80-120 µs per round trip either way,
// with -race off, on a shared 2-core machine). The first request on a
// connection also pays one flush (see the code). Only the first reply counts.
// To keep nats.go's own request call instead, see Context.
//
// A no-responders status (503) comes back as nats.ErrNoResponders, as from
// nats.go's Request: the server sends it because the inbox subscription
// reached it before the publish. A close of nc during the wait ends it at
// once with nats.ErrConnectionClosed (unless a reply came first).
//
// Errors:
//   - nats.ErrPermissionViolation and ErrDenied: the server denied the
//     publish to msg.Subject or the subscription to the inbox, or refused
//     the inbox as a reply subject (a reserved prefix); the text is the
//     server's, which names the subject;
//   - nats.ErrNoResponders; ctx's error (context.DeadlineExceeded,
//     context.Canceled); nats.ErrConnectionClosed, for a connection closed
//     before or during the wait; nats.go's errors for a bad subject, a
//     payload over the server's maximum.
func Request(ctx context.Context, nc *nats.Conn, msg *nats.Msg) (*nats.Msg, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	state := hook(nc)
	inbox := nc.NewInbox()
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := watchDenials(nc, func(err error) {
		cancel(denied(err, inbox))
	}, denialKey{kind: denyPublish, subject: msg.Subject}, denialKey{kind: denySubscribe, subject: inbox},
		denialKey{kind: denyReply, subject: inbox})
	defer stop()
	closed, unwatch := closeSignal(nc)
	defer unwatch()

	// A channel subscription: nats.go's synchronous one (SubscribeSync and
	// NextMsg) costs about 1.2 ms more per request here (BenchmarkRequest).
	// It takes two messages (see replyInboxMax), and the channel holds
	// both, so that a second reply is never a slow consumer.
	replies := make(chan *nats.Msg, replyInboxMax)
	sub, err := nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, fmt.Errorf("subscribe %q: %w", inbox, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.AutoUnsubscribe(replyInboxMax); err != nil {
		return nil, fmt.Errorf("subscribe %q: %w", inbox, err)
	}
	// The first request on a connection makes sure its inbox is allowed
	// before it publishes: a flush, then a look for a violation on that
	// exact inbox. Were the inbox denied and the request sent anyway, the
	// server might deny the publish too, and that second violation would
	// reach the error handler after the request had already returned the
	// first: printed, a double report. Once an inbox under the connection's
	// prefix has been allowed, the others are (the permission is the
	// prefix), and later requests skip the extra round trip. While the
	// connection is down, or if the flush fails, the check waits for a
	// later request.
	if !state.inboxOK.Load() && nc.Status() == nats.CONNECTED {
		fctx, fcancel := wctx, context.CancelFunc(func() {})
		if _, ok := wctx.Deadline(); !ok {
			fctx, fcancel = context.WithTimeout(wctx, nc.Opts.Timeout)
		}
		ferr := nc.FlushWithContext(fctx)
		fcancel()
		if cause := context.Cause(wctx); errors.Is(cause, ErrDenied) {
			return nil, cause
		}
		// The violation was read before the PONG, but nats.go hands it to
		// the error handler on another goroutine: it is also the
		// connection's last error by now. The inbox is new, so a match on
		// it is this request's.
		if last := nc.LastError(); last != nil {
			if kind, subject, _, ok := parseViolation(last); ok && kind == denySubscribe && subject == inbox {
				claimedElsewhere(nc, last)
				return nil, denied(last, inbox)
			}
		}
		if ferr == nil {
			state.inboxOK.Store(true)
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	req := *msg
	req.Reply = inbox
	req.Sub = nil
	if err := nc.PublishMsg(&req); err != nil {
		return nil, err
	}
	select {
	case m := <-replies:
		return reply(m)
	case <-closed:
		// nats.go sends no subscription status when the connection
		// closes: the connection's own status says it.
		select {
		case m := <-replies:
			return reply(m)
		default:
		}
		return nil, nats.ErrConnectionClosed
	case <-wctx.Done():
		if cause := context.Cause(wctx); errors.Is(cause, ErrDenied) {
			return nil, cause
		}
		return nil, ctx.Err()
	}
}

// replyInboxMax is the AutoUnsubscribe count of Request's inbox: 2, not
// 1. nats-server counts only delivered replies against it, not its own
// no-responders status, while nats.go counts every message and, at the
// count, drops the subscription without sending UNSUB: with 1, each "no
// responders" would leave the inbox's interest on the server for good.
// With 2, the status (or a first reply) leaves the subscription in place,
// and Request's own Unsubscribe removes it on both sides; if two replies
// come first, both sides drop it at that count. The server still sends at
// most two replies of many responders.
const replyInboxMax = 2

// closeSignal returns a channel that receives when nc closes (at once if
// it is closed already), and the function that stops it. nats.go sends a
// subscription no status when its connection closes, so a wait for a
// reply watches the connection itself.
func closeSignal(nc *nats.Conn) (closed <-chan nats.Status, stop func()) {
	ch := nc.StatusChanged(nats.CLOSED)
	if nc.IsClosed() {
		select {
		case ch <- nats.CLOSED:
		default: // the close event is there already
		}
	}
	return ch, func() { nc.RemoveStatusListener(ch) }
}

// reply returns m, or nats.ErrNoResponders for the server's no-responders
// status: no payload and the header "Status: 503", as nats.go reads it.
func reply(m *nats.Msg) (*nats.Msg, error) {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return nil, nats.ErrNoResponders
	}
	return m, nil
}

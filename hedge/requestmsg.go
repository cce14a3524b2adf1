// A request with headers of the caller's: RequestMsg puts them on every
// copy (first, hedge, retry), so that a header meant for the logical request,
// such as an idempotency key, reaches whichever copy a responder runs.

package hedge

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// headerKey is the context key under which RequestMsg hands Request the
// caller's headers.
type headerKey struct{}

// headerOf returns the headers RequestMsg put in ctx, or nil.
func headerOf(ctx context.Context) nats.Header {
	h, _ := ctx.Value(headerKey{}).(nats.Header)
	return h
}

// copyHeader returns a copy of the call's headers for one copy of the
// request, or nil: each copy gets its own map, so that its DeadlineHeader
// (Policy.Propagate) is set on the copy and not on the caller's message.
func (cl *call) copyHeader() nats.Header {
	if len(cl.header) == 0 {
		return nil
	}
	h := make(nats.Header, len(cl.header)+1)
	for k, v := range cl.header {
		h[k] = append([]string(nil), v...)
	}
	return h
}

// budgetEnd returns when the relative budget the caller's headers h carry
// (TimeoutHeader, under any spelling, the earliest) runs out, counted from
// now; zero when they carry none, or one that does not parse (passed on
// as it is, for the responder to refuse).
func budgetEnd(h nats.Header, now time.Time) time.Time {
	budgets := nats.Header{}
	for k, v := range h {
		if strings.EqualFold(k, TimeoutHeader) {
			budgets[k] = v
		}
	}
	end, ok, err := DeadlineAt(budgets, now)
	if !ok || err != nil {
		return time.Time{}
	}
	return end
}

// spend replaces the caller's budget in h, a copy's headers, with what is
// left of it at now: a hedge or retry sent later must not carry the whole
// budget, or its responder, counting it from when it reads the copy, would
// work past the moment the caller gives up.
func (cl *call) spend(h nats.Header, now time.Time) {
	if cl.budget.IsZero() {
		return
	}
	replaceHeader(h, TimeoutHeader, formatTimeout(cl.budget.Sub(now)))
}

// RequestMsg is Request for msg.Subject and msg.Data, with msg.Header put
// on every copy the client sends for it: the first, each hedge and each
// retry carry the same headers (their own copy of them, so msg is not
// changed; under Policy.Propagate the client's DeadlineHeader replaces one
// of the caller's; a TimeoutHeader of the caller's, a relative budget, is
// counted from the call, and each copy carries what is left of it when it
// is sent). This is how a header of the logical request, such as
// an idempotency key (reqreply/idempotent), reaches whichever copy a
// responder runs. msg.Reply is ignored: every copy gets its own reply
// subject under the client's inbox.
//
// Errors are Request's; a nil msg is refused with an error wrapping
// nats.ErrInvalidArg, and headers on a connection whose server does not
// support them with nats.ErrHeadersNotSupported (from the publish).
func (c *Client) RequestMsg(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	if msg == nil {
		return nil, fmt.Errorf("request: no message: %w", nats.ErrInvalidArg)
	}
	if len(msg.Header) > 0 {
		ctx = context.WithValue(ctx, headerKey{}, msg.Header)
	}
	return c.Request(ctx, msg.Subject, msg.Data)
}

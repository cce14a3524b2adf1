// The requester side: one timed request, and what its failure says.

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultTimeout is how long a request waits for its reply unless -timeout
// says otherwise: 2 s. A request that nobody subscribes to does not wait it
// out; that is the point of this scenario.
const DefaultTimeout = 2 * time.Second

// Ask sends one request with an empty payload to subject and waits for the
// reply at most timeout (> 0; DefaultTimeout is 2 s) or until ctx ends,
// whichever is first. It returns the reply's payload and how long the
// request took, from just before it was sent until the reply or the error
// came back (also on error, so the caller can show how fast it failed).
//
// It is nats.go's RequestWithContext, and it relies on the no-responders
// feature of NATS (nats-server 2.2 and later, nats.go 1.11 and later): a
// client that announces "headers" and "no_responders" in its CONNECT (nats.go
// does whenever the server supports headers; there is no option to turn it
// off) is sent, when it publishes a message with a reply subject to a subject
// that has no subscriber, a message on that reply subject with status 503 in
// its header and no payload; the server sends it only if the publisher itself
// subscribes to the reply subject, as nats.go's request inbox does, and it
// decides from its own view of interest. Request, RequestWithContext and
// Subscription.NextMsg turn that message into nats.ErrNoResponders, at once,
// instead of waiting out the timeout. A plain publish (no reply subject) gets
// no such message: it is simply dropped. A subscriber that takes the request
// and never answers does count as interest, so no 503 comes and the request
// times out.
//
// Errors (each wrapped with the subject):
//   - nats.ErrInvalidArg: timeout ≤ 0 (nothing is sent);
//   - nats.ErrNoResponders: nobody subscribes to subject;
//   - nats.ErrTimeout, also matching context.DeadlineExceeded: no reply
//     within timeout, though someone subscribes;
//   - ctx's own error (context.Canceled, context.DeadlineExceeded) when ctx
//     ends first;
//   - nats.ErrBadSubject for an invalid subject, nats.ErrConnectionClosed and
//     other connection errors.
func Ask(ctx context.Context, nc *nats.Conn, subject string, timeout time.Duration) (reply string, took time.Duration, err error) {
	if timeout <= 0 {
		return "", 0, fmt.Errorf("request %q: timeout %v must be > 0: %w", subject, timeout, nats.ErrInvalidArg)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	msg, err := nc.RequestWithContext(rctx, subject, nil)
	took = time.Since(start)
	switch {
	case err == nil:
		return string(msg.Data), took, nil
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		// Our own timeout fired, not the caller's context: say so the way
		// nats.Conn.Request does, and keep the context error matchable.
		return "", took, fmt.Errorf("request %q: no reply within %v: %w (%w)", subject, timeout, nats.ErrTimeout, err)
	default:
		return "", took, fmt.Errorf("request %q: %w", subject, err)
	}
}

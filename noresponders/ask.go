// The requester side: one timed request, and what its failure says.

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/denials"
	"reqreply/respond"
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
// It is nats.go's own nc.RequestMsgWithContext, with prompt denials attached
// from outside (denials.Context and denials.Err), so that a publish or
// response-inbox subscription denied by the server's permissions fails
// within one round trip instead of waiting out the timeout. The reply comes
// on nats.go's response mux, one wildcard subscription per connection under
// nc.NewRespInbox's prefix (nats.CustomInboxPrefix's when nc has one), made
// with nc's first request and kept until nc closes. It relies on the no-responders
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
//   - nats.ErrPermissionViolation (and denials.ErrDenied): the server denied
//     the publish to subject or the response inbox's subscription; the
//     text names the subject;
//   - a *respond.ServiceError: the responder answered with an error reply
//     (the Nats-Service-Error headers);
//   - nats.ErrTimeout, also matching context.DeadlineExceeded: no reply
//     within timeout, though someone subscribes; or the connection was
//     down (the request waited in nats.go's reconnect buffer), or the
//     server does not support headers, which the no-responders status needs:
//     the message says which;
//   - ctx's own error (context.Canceled, context.DeadlineExceeded) when ctx
//     ends first;
//   - nats.ErrBadSubject for a subject respond.CheckSubject refuses (nothing is
//     sent); nats.ErrConnectionClosed (for a close before the call or
//     during the wait: that ends it at once) and other connection errors.
//
// However it ends, Ask leaves nothing behind but nats.go's response mux.
func Ask(ctx context.Context, nc *nats.Conn, subject string, timeout time.Duration) (reply string, took time.Duration, err error) {
	return AskWith(ctx, nc, subject, timeout, nil)
}

// AskWith is Ask with header sent on the request (nil: none), such as the
// trace context of a span the caller started (otelnats.StartRequest). A
// header on a server without header support fails with
// nats.ErrHeadersNotSupported.
func AskWith(ctx context.Context, nc *nats.Conn, subject string, timeout time.Duration, header nats.Header) (reply string, took time.Duration, err error) {
	if err := respond.CheckSubject(subject); err != nil {
		return "", 0, err
	}
	if timeout <= 0 {
		return "", 0, fmt.Errorf("request %q: timeout %v must be > 0: %w", subject, timeout, nats.ErrInvalidArg)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dctx, stop := denials.Context(rctx, nc, subject)
	defer stop()
	start := time.Now()
	msg, err := nc.RequestMsgWithContext(dctx, &nats.Msg{Subject: subject, Header: header})
	err = denials.Err(dctx, err)
	took = time.Since(start)
	switch {
	case err == nil:
		if err := respond.ErrorOf(msg); err != nil {
			return "", took, fmt.Errorf("request %q: %w", subject, err)
		}
		return string(msg.Data), took, nil
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		// Our own timeout fired, not the caller's context: say so the way
		// nats.Conn.Request does, and keep the context error matchable.
		return "", took, fmt.Errorf("request %q: no reply within %v%s: %w (%w)", subject, timeout, respond.WhyNoReply(nc), nats.ErrTimeout, err)
	default:
		return "", took, fmt.Errorf("request %q: %w", subject, err)
	}
}

// ErrNoHeaders is wrapped by Run's error when the server does not support
// headers: the no-responders status is a header, so a request nobody serves
// would only time out, and the scenario has nothing to show.
var ErrNoHeaders = errors.New("the fast no-responders error needs a server with header support (nats-server 2.2 or later, headers not turned off)")

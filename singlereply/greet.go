// The requester side: one request, one reply, with every error it can end in.

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/denials"
	"reqreply/respond"
)

// DefaultTimeout is how long Greet waits for the reply unless told: 500 ms.
const DefaultTimeout = 500 * time.Millisecond

// MaxNameLen is the longest name Greet takes: 1,024 bytes, well inside the
// 4,096-byte control line (subject, reply subject, sizes) nats-server reads
// by default; a longer one makes the server close the connection.
const MaxNameLen = 1024

// GreetSubject returns the subject to request a greeting for name,
// "greet.<name>". name must be one subject token: not empty, at most
// MaxNameLen bytes, without '.', '*', '>', white space or control
// characters (which would also be echoed into the greeting, and so into
// the terminal); otherwise the error wraps nats.ErrBadSubject.
func GreetSubject(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, ".*>") || strings.ContainsFunc(name, isSpaceOrControl) {
		return "", fmt.Errorf("greet %q: name must be one subject token (no '.', '*', '>', spaces or control characters): %w", name, nats.ErrBadSubject)
	}
	if len(name) > MaxNameLen {
		return "", fmt.Errorf("greet: name of %d bytes is longer than %d: %w", len(name), MaxNameLen, nats.ErrBadSubject)
	}
	return greetPrefix + name, nil
}

// isSpaceOrControl reports whether r is a space or an ASCII control
// character.
func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// Greet sends one request to greet.<name> and returns the reply's payload,
// waiting at most timeout (> 0; DefaultTimeout is 500 ms) or until ctx ends,
// whichever is first. It is nats.go's own nc.RequestMsgWithContext, with
// prompt denials attached from outside (denials.Context and denials.Err): a server
// with no subscriber on the subject answers at once with a 503 status, so a
// missing service fails fast instead of waiting out the timeout, and a
// publish or response-inbox subscription that the server's permissions deny
// fails within one round trip, not at the timeout. The reply comes on
// nats.go's response mux: one wildcard subscription per connection under
// nc.NewRespInbox's prefix (so under nats.CustomInboxPrefix's when nc has
// one), made with nc's first request and kept until nc closes; Greet adds
// nothing else that outlives it. Only the first reply counts. A close of nc
// during the wait ends it at once with an error wrapping
// nats.ErrConnectionClosed.
//
// While nc is disconnected, the request waits in nats.go's reconnect buffer:
// it is sent if a server answers within timeout (and answered, or failed
// with no responders if the greeter has not subscribed again yet), and
// otherwise fails with nats.ErrTimeout, whose message then says the
// connection was down.
//
// Errors (each wrapped with the subject):
//   - nats.ErrBadSubject: name is not one subject token (nothing is sent);
//   - nats.ErrInvalidArg: timeout ≤ 0 (nothing is sent);
//   - nats.ErrNoResponders: nobody subscribes to greet.<name>;
//   - nats.ErrPermissionViolation (and denials.ErrDenied): the server denied
//     the publish to greet.<name> or the response inbox's subscription; the
//     text names the subject (for the inbox, with denials.InboxHint);
//   - a *respond.ServiceError: the greeter answered with an error reply
//     (its handler failed or panicked);
//   - nats.ErrTimeout, also matching context.DeadlineExceeded: no reply
//     within timeout; the message says why when it can: disconnected, or a
//     server without header support, which sends neither error replies nor
//     the no-responders status;
//   - ctx's own error (context.Canceled, context.DeadlineExceeded) when ctx
//     ends first;
//   - nats.ErrConnectionClosed, nats.ErrReconnectBufExceeded and other
//     connection errors.
func Greet(ctx context.Context, nc *nats.Conn, name string, timeout time.Duration) (string, error) {
	return GreetWith(ctx, nc, name, timeout, nil)
}

// GreetWith is Greet with header sent on the request (nil: none), such as
// the Nats-Trace-Dest of -msgtrace (package msgtrace) or the trace context
// of a span the caller started (otelnats.StartRequest). A header on a server
// without header support fails with nats.ErrHeadersNotSupported.
func GreetWith(ctx context.Context, nc *nats.Conn, name string, timeout time.Duration, header nats.Header) (string, error) {
	subject, err := GreetSubject(name)
	if err != nil {
		return "", err
	}
	if timeout <= 0 {
		return "", fmt.Errorf("greet %q: timeout %v must be > 0: %w", subject, timeout, nats.ErrInvalidArg)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dctx, stop := denials.Context(rctx, nc, subject)
	defer stop()
	msg, err := nc.RequestMsgWithContext(dctx, &nats.Msg{Subject: subject, Header: header})
	err = denials.Err(dctx, err)
	switch {
	case err == nil:
		if err := respond.ErrorOf(msg); err != nil {
			return "", fmt.Errorf("greet %q: %w", subject, err)
		}
		return string(msg.Data), nil
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		// Our own timeout fired, not the caller's context: say so the way
		// nats.Conn.Request does, and keep the context error matchable.
		return "", fmt.Errorf("greet %q: no reply within %v%s: %w (%w)", subject, timeout, respond.WhyNoReply(nc), nats.ErrTimeout, err)
	default:
		return "", fmt.Errorf("greet %q: %w", subject, err)
	}
}

// The requester side: one request, one reply, with every error it can end in.

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultTimeout is how long Greet waits for the reply unless told: 500 ms.
const DefaultTimeout = 500 * time.Millisecond

// MaxNameLen is the longest name Greet takes: 1,024 bytes, well inside the
// 4,096-byte control line (subject, reply subject, sizes) nats-server reads
// by default; a longer one makes the server close the connection.
const MaxNameLen = 1024

// GreetSubject returns the subject to request a greeting for name,
// "greet.<name>". name must be one subject token: not empty, at most
// MaxNameLen bytes, without '.', '*', '>' or white space; otherwise the
// error wraps nats.ErrBadSubject.
func GreetSubject(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, ".*> \t\r\n") {
		return "", fmt.Errorf("greet %q: name must be one subject token (no '.', '*', '>' or spaces): %w", name, nats.ErrBadSubject)
	}
	if len(name) > MaxNameLen {
		return "", fmt.Errorf("greet: name of %d bytes is longer than %d: %w", len(name), MaxNameLen, nats.ErrBadSubject)
	}
	return greetPrefix + name, nil
}

// Greet sends one request to greet.<name> and returns the reply's payload,
// waiting at most timeout (> 0; DefaultTimeout is 500 ms) or until ctx ends,
// whichever is first. It is nats.go's RequestWithContext: the reply comes to
// a per-connection response inbox, and a server with no subscriber on the
// subject answers at once with a 503 status, so a missing service fails fast
// instead of waiting out the timeout.
//
// Errors (each wrapped with the subject):
//   - nats.ErrBadSubject: name is not one subject token (nothing is sent);
//   - nats.ErrInvalidArg: timeout ≤ 0 (nothing is sent);
//   - nats.ErrNoResponders: nobody subscribes to greet.<name>;
//   - nats.ErrTimeout, also matching context.DeadlineExceeded: no reply
//     within timeout;
//   - ctx's own error (context.Canceled, context.DeadlineExceeded) when ctx
//     ends first;
//   - nats.ErrConnectionClosed and other connection errors.
func Greet(ctx context.Context, nc *nats.Conn, name string, timeout time.Duration) (string, error) {
	subject, err := GreetSubject(name)
	if err != nil {
		return "", err
	}
	if timeout <= 0 {
		return "", fmt.Errorf("greet %q: timeout %v must be > 0: %w", subject, timeout, nats.ErrInvalidArg)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, subject, nil)
	switch {
	case err == nil:
		return string(msg.Data), nil
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		// Our own timeout fired, not the caller's context: say so the way
		// nats.Conn.Request does, and keep the context error matchable.
		return "", fmt.Errorf("greet %q: no reply within %v: %w (%w)", subject, timeout, nats.ErrTimeout, err)
	default:
		return "", fmt.Errorf("greet %q: %w", subject, err)
	}
}

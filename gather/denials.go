// The opt-in hook that makes permission denials end a gather within one
// round trip instead of at its deadline.

package gather

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Denials makes the server's permission denials prompt for a gather. It is
// opt-in: Inbox.Denials, the Natsext adapter's Denials field and the
// WithDenials option of NewMux take one; without it (nil) a gather whose
// publish or inbox subscription the server denies ends as plain nats.go
// would, at its deadline, and nats.go hands the violation to the
// connection's async error handler only.
//
// Why a hook. nats-server answers a denied PUB or SUB with
// "-ERR 'Permissions Violation for Publish to "<subject>"'" (or
// "Subscription to") and sends nothing else: no reply, no no-responders
// status. nats.go hands that error to the connection's async error handler,
// with no subscription attached. Telling which request it belongs to means
// owning a dispatch in front of that handler; reqreply's denials code
// (SubscribeChecked, WatchDenials, Violation and ErrDenied) is one, and an
// adapter of a few lines turns it into a Denials (the multireply program's
// variants.Hook).
type Denials interface {
	// SubscribeChecked calls subscribe (which subscribes nc to subject,
	// in queue group queue or none), flushes nc (bounded by ctx's
	// deadline, else nc's connect timeout) and returns the subscription,
	// or an error wrapping nats.ErrPermissionViolation, naming subject,
	// if the server denied it (the subscription is then released), or the
	// flush's error.
	SubscribeChecked(ctx context.Context, nc *nats.Conn, subject, queue string, subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error)
	// WatchPublish calls onDenied, once, with the first violation the
	// server reports on nc for a publish to subject (exact), wrapping
	// nats.ErrPermissionViolation, until stop is called. Register it
	// before publishing: the violation can come back at once.
	WatchPublish(nc *nats.Conn, subject string, onDenied func(error)) (stop func())
	// Violation reads a permissions violation as nats.go hands it to an
	// async error handler: publish is true for a denied publish, false
	// for a denied subscription; subject is the denied subject, unquoted;
	// ok is false for any other error. The Mux reads its own connection's
	// errors with it.
	Violation(err error) (publish bool, subject string, ok bool)
	// Denied returns err, a violation Violation read, as the error the
	// Mux's gathers end with: wrapping err (and so
	// nats.ErrPermissionViolation) and whatever marks a denial for the
	// caller (the denials package's ErrDenied).
	Denied(err error) error
}

// subscribeFlushed calls subscribe and flushes nc, so that the server has
// the subscription before anything is published: through
// d.SubscribeChecked, which also brings back a denial of it, or, with no
// Denials, with a flush bounded the same way (ctx's deadline, else nc's
// connect timeout). On a failed flush the subscription is released.
func subscribeFlushed(ctx context.Context, d Denials, nc *nats.Conn, subject string, subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error) {
	if d != nil {
		return d.SubscribeChecked(ctx, nc, subject, "", subscribe)
	}
	sub, err := subscribe()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); ok {
		err = nc.FlushWithContext(ctx)
	} else {
		err = nc.FlushTimeout(flushTimeout(nc))
	}
	if err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %q: flush: %w", subject, err)
	}
	return sub, nil
}

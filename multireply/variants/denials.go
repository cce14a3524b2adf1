// The gather.Denials hook, forwarding to reqreply's prompt-denial code.

package variants

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"reqreply/denials"
	"reqreply/gather"
)

// Hook is a gather.Denials forwarding to the denials functions: give it as
// gather.Inbox's Denials, natsextgather.Natsext's Denials, or
// gather.WithDenials(Hook{}) to NewMux. It lives apart from gather and from
// denials, which each import only nats.go, so that either directory can be
// copied alone.
type Hook struct{}

var _ gather.Denials = Hook{}

// SubscribeChecked is denials.SubscribeChecked: subscribe, flush, and an
// error wrapping nats.ErrPermissionViolation and denials.ErrDenied, naming subject,
// if the server denied the subscription.
func (Hook) SubscribeChecked(ctx context.Context, nc *nats.Conn, subject, queue string, subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error) {
	return denials.SubscribeChecked(ctx, nc, subject, queue, subscribe)
}

// WatchPublish is denials.Watch for one publish subject: onDenied
// gets the first violation of a publish to subject on nc, wrapping
// nats.ErrPermissionViolation and denials.ErrDenied, until stop.
func (Hook) WatchPublish(nc *nats.Conn, subject string, onDenied func(error)) (stop func()) {
	return denials.Watch(nc, onDenied, []string{subject}, nil)
}

// Violation is denials.Violation: the kind and subject of a permissions
// violation as nats.go hands it to an async error handler.
func (Hook) Violation(err error) (publish bool, subject string, ok bool) {
	return denials.Violation(err)
}

// Denied wraps err, a violation, with denials.ErrDenied.
func (Hook) Denied(err error) error {
	return fmt.Errorf("%w (%w)", err, denials.ErrDenied)
}

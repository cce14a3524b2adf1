// ClientChecks: this package's checks for package reqreply/hedge's Client,
// which does not import it.

package denials

import (
	"context"

	"github.com/nats-io/nats.go"
)

// ClientChecks gives a reqreply/hedge Client this package's prompt denials:
// it satisfies hedge.Checks, and is attached with
// hedge.NewClient(nc, policy, hedge.WithChecks(denials.ClientChecks{})).
// The client's inbox is subscribed with SubscribeChecked, and each subject
// with a request under way is watched (Watch) for a denied publish. Its
// errors wrap nats.ErrPermissionViolation and ErrDenied.
type ClientChecks struct{}

// SubscribeChecked is the package's SubscribeChecked.
func (ClientChecks) SubscribeChecked(ctx context.Context, nc *nats.Conn, subject, queue string, subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error) {
	return SubscribeChecked(ctx, nc, subject, queue, subscribe)
}

// Watch is the package's Watch for publishes to subject.
func (ClientChecks) Watch(nc *nats.Conn, subject string, onDenied func(error)) (stop func()) {
	return Watch(nc, onDenied, []string{subject}, nil)
}

// Rehook is the package's Rehook.
func (ClientChecks) Rehook(nc *nats.Conn) { Rehook(nc) }

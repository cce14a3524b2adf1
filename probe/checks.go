// Checks: how a wait for responders learns of a permission denial at once,
// from outside this package (package reqreply/denials provides them).

package probe

import (
	"context"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// Checks makes the server's permission denials end a wait (Await,
// AwaitNone) within one round trip, instead of leaving every probe
// unanswered until the wait's timeout. reqreply/denials' ProbeChecks is
// one; this package does not import it, so that its directory can be
// copied alone.
type Checks interface {
	// SubscribeChecked makes the probes' inbox subscription with
	// subscribe and confirms it (a flush, bounded by ctx): an error
	// wrapping nats.ErrPermissionViolation if the server denied it.
	SubscribeChecked(ctx context.Context, nc *nats.Conn, subject, queue string, subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error)
	// PublishChecked publishes the first probe and confirms it (a flush,
	// bounded by ctx): an error wrapping nats.ErrPermissionViolation if
	// the server denied it, ctx's error or nats.ErrConnectionClosed if
	// the flush did not come back.
	PublishChecked(ctx context.Context, nc *nats.Conn, msg *nats.Msg) error
	// WatchAnswers calls onDenied, once, when a responder of this process
	// has its answer to a probe under inbox (inbox+".<n>") denied, until
	// stop is called.
	WatchAnswers(inbox string, onDenied func(error)) (stop func())
}

// installed holds the Checks UseChecks installed; nil for none.
var installed atomic.Pointer[Checks]

// UseChecks installs c for every wait of the process from now on; nil
// removes them. The checks are process-wide, as the denials they watch
// are: a responder's denied answer reaches the wait whichever connection
// of the process it was sent on. internal/cli installs
// denials.ProbeChecks{} for the scenario programs. Without checks, a wait
// subscribes and publishes plainly.
func UseChecks(c Checks) {
	if c == nil {
		installed.Store(nil)
		return
	}
	installed.Store(&c)
}

// current returns the installed Checks, nil for none.
func current() Checks {
	if c := installed.Load(); c != nil {
		return *c
	}
	return nil
}

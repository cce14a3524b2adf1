// How long a program waits for its setup: the -timeout flag, made a bound
// for the round trips around the requests.

package cli

import (
	"time"

	"github.com/nats-io/nats.go"
)

// SetupTimeout bounds the round trips a program makes around its requests
// (a wait for interest to arrive or to go, a flush, reading stats): the
// request timeout, but at least nats.DefaultTimeout (2 s), so that a short
// timeout meant for the requests does not cut short a wait that a loaded
// machine or a route makes longer. Nobody serving still ends a wait for
// interest after probe.NoRespondersFor.
func SetupTimeout(timeout time.Duration) time.Duration {
	return max(timeout, nats.DefaultTimeout)
}

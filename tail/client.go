// The program's client: package hedge's Client with this suite's prompt
// permission denials attached (denials.ClientChecks), so a request to a
// subject the server denies ends within one round trip.

package main

import (
	"github.com/nats-io/nats.go"

	"reqreply/denials"
	"reqreply/hedge"
	"reqreply/otelnats"
)

// newClient is hedge.NewClient with denials.ClientChecks and otelnats'
// observer (a span per request and per copy, and the hedge metrics, when
// telemetry is on), then opts.
func newClient(nc *nats.Conn, p hedge.Policy, opts ...hedge.Option) (*hedge.Client, error) {
	base := []hedge.Option{hedge.WithChecks(denials.ClientChecks{}), hedge.WithObserver(otelnats.Default().HedgeObserver())}
	return hedge.NewClient(nc, p, append(base, opts...)...)
}

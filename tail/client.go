// The program's client: package hedge's Client with this suite's prompt
// permission denials attached (denials.ClientChecks), so a request to a
// subject the server denies ends within one round trip.

package main

import (
	"github.com/nats-io/nats.go"

	"reqreply/denials"
	"reqreply/hedge"
)

// newClient is hedge.NewClient with denials.ClientChecks, then opts.
func newClient(nc *nats.Conn, p hedge.Policy, opts ...hedge.Option) (*hedge.Client, error) {
	return hedge.NewClient(nc, p, append([]hedge.Option{hedge.WithChecks(denials.ClientChecks{})}, opts...)...)
}

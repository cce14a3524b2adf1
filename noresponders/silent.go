// A subscriber that takes requests and never answers: interest without replies.

package main

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"

	"reqreply/denials"
	"reqreply/probe"
)

// SilentSubjects is served by a subscriber that takes every request and
// never answers it: the case no-responders cannot catch.
const SilentSubjects = "silent.*"

// ServeSilent subscribes nc to SilentSubjects with a handler that drops
// every request, and flushes, so a request sent afterwards finds the
// subscriber. The server sees interest, delivers the request and sends no
// 503; the requester can only wait out its timeout (nats.ErrTimeout). It
// does answer readiness probes (a request with probe.Header), with
// SilentProbeName, so that a requester on another server can wait for its
// interest. Stop
// it with Unsubscribe or Drain, or by closing nc. The error wraps the nats.go
// error of the failed subscribe or flush, or nats.ErrPermissionViolation
// when the server's permissions deny the subscription.
func ServeSilent(nc *nats.Conn) (*nats.Subscription, error) {
	// Subscribe, then flush, bounded by the connection's timeout (2 s by
	// default), not nats.go's fixed 10 s, so a server that stopped
	// answering fails fast; and a subscription the server's permissions
	// deny fails here, naming the subject, instead of serving nothing.
	sub, err := denials.SubscribeChecked(context.Background(), nc, SilentSubjects, "", func() (*nats.Subscription, error) {
		return nc.Subscribe(SilentSubjects, func(m *nats.Msg) {
			// A readiness probe is answered: a requester on another server
			// learns that this interest has reached it. Requests are not.
			probe.Answer(m, SilentProbeName)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("serve %q: %w", SilentSubjects, err)
	}
	return sub, nil
}

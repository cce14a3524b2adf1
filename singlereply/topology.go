// What changes beyond one server: where each connection sits (-cluster N
// puts the greeter on the first node and the requester on the second), and
// the wait, before the first request, until the greeter's interest is
// visible from the requester's own node.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/internal/cli"
	"reqreply/probe"
)

// ProbeName is the greeter's answer to a readiness probe (probe.Answer):
// "greeter".
const ProbeName = "greeter"

// On one server the greeter's flush is enough: its subscription is there
// before the requester connects. On a cluster (-cluster N, or NATS_URL
// listing several servers) the requester's server learns of it
// asynchronously, over the route, and a request sent before then gets no
// responders. A client cannot read another server's interest; it asks:
// readiness probes (probe.Await) on the first request's own
// subject, marked with probe.Header, which the greeter answers without
// greeting anyone.

// awaitGreeter waits, with readiness probes from nc on subject bounded by
// cli.SetupTimeout(timeout), until someone answers one: the greeter's interest
// has reached nc's server. When the wait was for interest (see
// waitedForInterest) it writes one line to w: how long, and what the
// probes saw. A wait that ends with no responders or a timeout is not the
// run's error: the requests are sent anyway and fail with their own
// errors, which say more; after a timeout (someone subscribes but did
// not answer) one line on env's stderr says so, after no responders
// nothing (the requests' own no-responders errors say it). The error is
// the probe's otherwise: a denial (nats.ErrPermissionViolation and
// denials.ErrDenied), ctx's error, a connection error.
func awaitGreeter(ctx context.Context, env *cli.Env, nc *nats.Conn, subject string, timeout time.Duration, w io.Writer) error {
	p, err := probe.Await(ctx, nc, subject, probe.AnyResponder(), cli.SetupTimeout(timeout))
	switch {
	case err == nil:
		if waitedForInterest(p) {
			fmt.Fprintf(w, "interest: waited %v for the greeter to be visible from %s: %s\n", cli.Round(p.Waited), cli.ServerName(nc), p)
		}
		return nil
	case errors.Is(err, nats.ErrNoResponders):
		// Nobody serves the subject: each request fails at once with no
		// responders, and its error says so; a line here would say it twice.
		return nil
	case errors.Is(err, nats.ErrTimeout):
		env.Logf("%s requester: no answer to the readiness probes within %v (%v): sending the requests anyway", env.Scenario, cli.Round(p.Waited), err)
		return nil
	default:
		return fmt.Errorf("waiting for the greeter's interest: %w", err)
	}
}

// waitedForInterest reports whether a successful wait was one for the
// greeter's interest to arrive, worth a line of output: a probe got no
// responders, the requester's server's own word that the interest had not
// reached it yet. A probe that merely went unanswered within its pause (1
// ms at first) had an answer on its way: the interest was there, the
// machine or the route was slow. Counting that (as probe.Probed.Delayed
// does, for the waits where a probe can be routed to a responder that has
// left) would make the output depend on the load, and no greeter of this
// run can have left before the first request.
func waitedForInterest(p probe.Probed) bool { return p.Refused > 0 }

// awaitFirst is awaitGreeter for the first of cfg.Names, before any request
// is sent (nothing when there are no names or ctx has ended). A wait that
// ends because ctx did returns ctx's error.
func awaitFirst(ctx context.Context, env *cli.Env, nc *nats.Conn, cfg Config, w io.Writer) error {
	if len(cfg.Names) == 0 || ctx.Err() != nil {
		return nil
	}
	subject, err := GreetSubject(cfg.Names[0])
	if err != nil {
		return err
	}
	if err := awaitGreeter(ctx, env, nc, subject, cfg.Timeout, w); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}

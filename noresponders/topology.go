// What changes beyond one server: where each connection sits (-cluster N
// puts the greeter and the silent subscriber on the first node and the
// requester on the second), and the waits, from the requester's own node,
// for the greeter's interest to arrive before the first request and to be
// gone before the request that must get no responders.

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

// The names the responders answer a readiness probe with (probe.Answer).
const (
	// GreeterProbeName is the greeter's: "greeter".
	GreeterProbeName = "greeter"
	// SilentProbeName is the silent subscriber's: "silent". It answers
	// probes, though never a request: a probe is not part of the scenario.
	SilentProbeName = "silent"
)

// On one server the greeter's flush is enough: its subscription is there
// before the requester connects, and its UNSUB, read before its reply, is
// gone by the time the reply arrives. On a cluster (-cluster N, or NATS_URL
// listing several servers) the requester's server learns of both
// asynchronously, over the route: a first request sent too early gets no
// responders, and a second one sent too early is routed to the greeter's
// server, where nobody takes it, and waits out its timeout instead of
// failing fast. A client cannot read another server's interest; it asks:
// readiness probes on the request's own subject, marked with
// probe.Header, which the responders answer without counting them as
// requests (the greeter does not drain for one).

// awaitResponder waits, with readiness probes from nc on subject bounded
// by cli.SetupTimeout(timeout), until someone answers one: who's interest has
// reached nc's server. When the wait was for interest (a probe got no
// responders) it writes one line to w: how long, and what the probes saw. A wait
// that ends with no responders or a timeout is not the run's error: the
// request is sent anyway and its own error says more (and how to fix it);
// after a timeout one line on env's stderr says so, after no responders
// nothing (the request's error says it). Otherwise the error is the probe's: a
// denial (nats.ErrPermissionViolation and denials.ErrDenied), ctx's error, a
// connection error.
func awaitResponder(ctx context.Context, env *cli.Env, nc *nats.Conn, subject, who string, timeout time.Duration, w io.Writer) error {
	p, err := probe.Await(ctx, nc, subject, probe.AnyResponder(), cli.SetupTimeout(timeout))
	switch {
	case err == nil:
		// A probe that got no responders is the requester's server's own
		// word that the interest had not reached it yet. One that merely
		// went unanswered within its pause had an answer on its way (no
		// responder of this run has left yet): a slow machine or route,
		// not a wait for interest, and not worth a line that would make
		// the output depend on the load.
		if p.Refused > 0 {
			fmt.Fprintf(w, "interest: waited %v for the %s to be visible from %s: %s\n", cli.Round(p.Waited), who, cli.ServerName(nc), p)
		}
		return nil
	case errors.Is(err, nats.ErrNoResponders):
		// Nobody serves the subject: the request fails at once with no
		// responders, and its error says so (with what to start); a line
		// here would say it twice.
		return nil
	case errors.Is(err, nats.ErrTimeout):
		env.Logf("%s requester: no answer to the readiness probes on %s within %v (%v): sending the request anyway", env.Scenario, subject, cli.Round(p.Waited), err)
		return nil
	default:
		return fmt.Errorf("waiting for the %s's interest: %w", who, err)
	}
}

// awaitNoResponders waits, with readiness probes from nc on subject bounded
// by cli.SetupTimeout(timeout), until nc's server answers one with no
// responders (probe.AwaitNone): the drained greeter's interest is
// gone from every server, as nc's server sees it, so the next request fails
// fast. When someone still answered a probe, or, on a cluster, probes went
// unanswered (routed to the greeter's server after it left), it writes one
// line to w. A wait that times out
// (something else still serves subject) is not the run's error: the
// request is sent anyway, and its outcome says what happened; one line on
// env's stderr says so. Otherwise the error is the probe's, as for
// awaitResponder.
func awaitNoResponders(ctx context.Context, env *cli.Env, nc *nats.Conn, subject string, timeout time.Duration, w io.Writer) error {
	p, err := probe.AwaitNone(ctx, nc, subject, cli.SetupTimeout(timeout))
	switch {
	case err == nil:
		// The last probe got no responders: that ends the wait. It was a
		// wait (probe.Probed.Delayed) when that status was not the first
		// probe's: someone still answered a probe, or, on a cluster, a
		// probe went where nobody took it (routed to the greeter's server
		// after it left). A first probe's status that merely came after
		// its pause, on a loaded machine, is no wait.
		if p.Delayed() {
			fmt.Fprintf(w, "interest: waited %v for the greeter's interest to leave %s: %s\n", cli.Round(p.Waited), cli.ServerName(nc), p)
		}
		return nil
	case errors.Is(err, nats.ErrTimeout):
		env.Logf("%s requester: %s still had interest after %v (%v): sending the request anyway", env.Scenario, subject, cli.Round(p.Waited), err)
		return nil
	default:
		return fmt.Errorf("waiting for the greeter's interest to go: %w", err)
	}
}

// responders names who sits on the responders' node, for the nodes line:
// the greeter, and with cfg.Silent the silent subscriber.
func responders(cfg Config) string {
	if cfg.Silent {
		return "greeter and silent subscriber"
	}
	return "greeter"
}

package main

import (
	"context"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"

	"reqreply/internal/cli"
	"reqreply/probe"
)

// This file is what changes beyond one server: where each connection sits
// (-cluster N spreads the members over the nodes and puts the requester on
// another node than worker-1's), and the wait, before the first request
// and after each change of the group, until the members' interest is
// visible from the requester's own node. A client cannot read another
// server's interest; it sends readiness probes (probe.Await), which
// the members answer without counting them.

// connectRequester connects the requester on the node the Env gives it:
// another than worker-1's when there are several; under -secure as the
// requester (cli.Requester), with its own inbox prefix.
func connectRequester(env *cli.Env) (*nats.Conn, error) {
	return env.ConnectNodeAs(cli.Requester, "requester", env.RequesterNode())
}

// awaitMembers waits, with readiness probes from nc bounded by
// cli.SetupTimeout(cfg.Timeout), until want is met, and writes one line when
// that was a wait for interest (showWait): how long, and who answered. The
// error is probe.Await': it wraps nats.ErrNoResponders or
// nats.ErrTimeout when the interest did not come in time.
func awaitMembers(ctx context.Context, env *cli.Env, w io.Writer, nc *nats.Conn, cfg Config, want probe.Want) error {
	p, err := probe.Await(ctx, nc, Subject, want, cli.SetupTimeout(cfg.Timeout))
	if err != nil {
		return fmt.Errorf("waiting for the members' interest: %w", err)
	}
	if showWait(env.MultiNode(), p, false) {
		fmt.Fprintf(w, "interest: waited %s for the members to be visible from %s: %s\n", ms(p.Waited), cli.ServerName(nc), p)
	}
	return nil
}

// showWait reports whether a wait for interest is worth a line of output.
// On several nodes any delay is (probe.Probed.Delayed): the interest had to
// cross a route, a leaf connection or a gateway. On one server a member's
// own flush has put its interest there before the first probe, so anything
// but the server's own word only met a busy machine; printing it would
// make the output depend on the load, and name the server by its ID. There only the server's own word counts: a
// probe that got no responders while waiting for members (leaving false),
// or, while waiting for them to leave (probe.AwaitNone, leaving
// true), a probe somebody still answered.
func showWait(multi bool, p probe.Probed, leaving bool) bool {
	if multi {
		return p.Delayed()
	}
	if leaving {
		return len(p.Seen) > 0
	}
	return p.Refused > 0
}

// writePlacement writes, when the Env has more than one node, which node
// each member and the requester are connected to.
func writePlacement(w io.Writer, env *cli.Env, members []*Member, nc *nats.Conn) {
	cli.WritePlacement(w, env, nc, members, func(m *Member) string { return m.Name + " on " + m.Server })
}

// writeInTransit writes the line that accounts for requests lost because
// they were routed to a node whose member had just left: counted, not a
// success and not a bug, and recovered by -retry.
func writeInTransit(w io.Writer, lost int, who string, retry bool) {
	fix := "run with -retry to re-send them"
	if retry {
		fix = "-retry re-sent them"
	}
	fmt.Fprintf(w, "in transit: %s timed out after being routed to %s's node as it left: NATS gives no guarantee for a request already routed to a server whose queue member has just gone (the other nodes learn of the departure asynchronously); %s\n",
		plural(lost, "request"), who, fix)
}

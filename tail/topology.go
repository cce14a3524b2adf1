// Beyond one server, and locked down: where each connection sits (-cluster
// N spreads the members over the nodes and puts the requester on another
// node than member-1's), the wait until the members' interest is visible
// from the requester's own node, before any request is counted, and the
// users -secure runs the members and the requester as.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/hedge"
	"reqreply/internal/cli"
	"reqreply/probe"
)

// Lockdown is tail's -secure setup (see cli.Lockdown): the requester may
// publish only to Subject and subscribe only to its own inbox prefix
// (cli.InboxPrefix; the Client's wildcard inbox "<prefix>.<nuid>.>" lies
// under it, and so do the readiness probes' inboxes); the members may
// subscribe only to Subject, in Group, and publish nothing but replies.
//
// MaxReplies is 1, and that is enough for hedges and retries:
// allow_responses counts the replies a connection sends to each reply
// subject it received, and every copy of a request (the first, a hedge, a
// retry) has a reply subject of its own, <inbox>.<call>.<copy>. So a hedged
// request answered by two members, or twice by one member (both copies
// routed to it), is two reply subjects answered once each; a readiness
// probe too has its own. ReplyWindow stays cli.DefaultReplyWindow (1 min):
// a member replies after its queue, and a reply over a minute after its
// request (possible only when a slow member's queue grows for a minute,
// -requests far above the default) is denied by the server and printed;
// its caller gave up long before (-timeout, 100 ms by default).
var Lockdown = cli.Lockdown{Service: []string{Subject}, MaxReplies: 1}

// connectRequester connects the requester on env.RequesterNode(): another
// node than member-1's when there are several.
func connectRequester(env *cli.Env) (*nats.Conn, error) {
	return env.ConnectNodeAs(cli.Requester, "requester", env.RequesterNode())
}

// memberNode is the node of member i (1-based): round-robin over the nodes
// (env.ResponderNode).
func memberNode(env *cli.Env, i int) int { return env.ResponderNode(i - 1) }

// awaitMembers waits, with readiness probes on subject (Subject, where the
// members are) from nc (probe.Await) bounded by
// cli.SetupTimeout(timeout), until want is met: the members' interest has
// reached nc's server, so no request counted after it gets a
// spurious no responders. When that took more than the first probes
// (Probed.Delayed) it writes one line to w, when w is not nil: how long,
// from which node, and who answered. The members answer probes without
// counting them (probe.Handler in front of the member's admission), and
// the probes use an inbox of their own, not the Client's, so no figure of
// a row sees them. The error wraps
// nats.ErrNoResponders (nobody serves subject) or nats.ErrTimeout (the
// names still missing are in it), or is ctx's. Probed is what the probes
// saw.
func awaitMembers(ctx context.Context, w io.Writer, nc *nats.Conn, subject string, want probe.Want, timeout time.Duration) (probe.Probed, error) {
	p, err := probe.Await(ctx, nc, subject, want, cli.SetupTimeout(timeout))
	if err != nil {
		return p, fmt.Errorf("waiting for the members' interest: %w", err)
	}
	if p.Delayed() && w != nil {
		fmt.Fprintf(w, "interest: waited %s for the members to be visible from %s: %s\n", ms(p.Waited), cli.ServerName(nc), p)
	}
	return p, nil
}

// awaitClient waits with readiness probes from c's connection until want
// is met on subject (awaitMembers: bounded by cli.SetupTimeout(timeout),
// one line on w when there was a wait), before a load is counted, under
// c's Guard: a publish to subject that the server denies ends it within
// about one round trip, with the error c.Request would return (it wraps
// nats.ErrPermissionViolation and names subject), as does a subject
// denied already. A close of c's connection, or of c, ends it at once (its
// error wraps nats.ErrConnectionClosed or hedge.ErrClientClosed). Other
// errors, and Probed, are awaitMembers'.
func awaitClient(ctx context.Context, c *hedge.Client, w io.Writer, subject string, want probe.Want, timeout time.Duration) (probe.Probed, error) {
	var p probe.Probed
	err := c.Guard(ctx, subject, func(ctx context.Context) error {
		var err error
		p, err = awaitMembers(ctx, w, c.Conn(), subject, want, timeout)
		cause := context.Cause(ctx)
		if errors.Is(cause, nats.ErrPermissionViolation) {
			return cause
		}
		if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			// The probes' error when the connection or the client closed.
			if errors.Is(cause, nats.ErrConnectionClosed) || errors.Is(cause, hedge.ErrClientClosed) {
				return fmt.Errorf("waiting for the members' interest: %w", cause)
			}
		}
		return err
	})
	return p, err
}

// waitLog is where the demo writes its waits for interest: w when the
// Env has several nodes, nil (not written) on one server. There the
// members' own flush has put their interest on the requester's server
// before the first probe, so a probe answered later than its 1 ms pause is
// the machine's scheduling under load, not interest, and a line for it
// would only be noise between the tables. (-request, whose members run
// elsewhere, always writes its wait.)
func waitLog(env *cli.Env, w io.Writer) io.Writer {
	if len(env.Nodes()) > 1 {
		return w
	}
	return nil
}

// allOf is the Want of every member in members: each has answered a probe.
func allOf(members []*Member) probe.Want {
	names := make([]string, 0, len(members))
	for _, m := range members {
		if m != nil {
			names = append(names, m.Name)
		}
	}
	return probe.AllOf(names...)
}

// writePlacement writes, when the Env has more than one node, which node
// each member and the requester are connected to, in one line.
func writePlacement(w io.Writer, env *cli.Env, members []*Member, nc *nats.Conn) {
	cli.WritePlacement(w, env, nc, members, func(m *Member) string { return m.Name + " on " + m.Server })
}

package main

import (
	"context"
	"fmt"
	"io"

	"reqreply/internal/cli"
	"reqreply/probe"
)

// This file scales the group under load: down, by draining a member, and
// up, by adding one. Both happen a third of the way into the run, while
// other requests are in flight.

// changeAt is the request before which the group changes: the one a third
// of the way into n requests (at least the 2nd, so some come before it).
func changeAt(n int) int { return max(n/3+1, 2) }

// drainHow says how the drain demo takes its member out.
type drainHow int

const (
	// drainConnection drains the member's connection, as a member process
	// does on SIGTERM: subscriptions drained, replies flushed, then closed.
	drainConnection drainHow = iota
	// drainSubscription drains only its subscription; the member stays
	// connected but leaves the group.
	drainSubscription
)

// String says how the member drains, as the program prints it.
func (h drainHow) String() string {
	if h == drainSubscription {
		return "its subscription's Drain"
	}
	return "its connection's Drain"
}

// runDrain is -demo drain: cfg.Workers members share cfg.Requests requests
// and, just before the request a third of the way in, worker-1 is drained
// (how says with which Drain) while the requests before it may still be in
// flight. Draining sends the server an UNSUB, so no new request is routed to
// the member, then answers what it already took, in its handler or queued in
// its client, before the subscription (or connection) closes. The run
// verifies that no request was lost or failed and that worker-1 answered
// every request it took; the error wraps ErrNotVerified otherwise.
func runDrain(ctx context.Context, env *cli.Env, cfg Config, w io.Writer, how drainHow) error {
	members, nc, err := startGroup(ctx, env, cfg, w)
	if err != nil {
		return err
	}
	victim, at := members[0], changeAt(cfg.Requests)
	fmt.Fprintf(w, "%s drains (%s) just before request %d is sent\n", victim.Name, how, at)

	// The drain starts from inside the run and goes on alongside it: the
	// requests sent meanwhile go to the others, or, if the server routed
	// them before it had the UNSUB, to worker-1, which still answers them.
	drained := make(chan error, 1)
	lc := loadConfig(cfg)
	lc.At = at
	lc.Before = func(context.Context) error {
		// The drain outlives the run's own context (which ends with Load),
		// so it takes the demo's.
		go func() {
			if how == drainSubscription {
				drained <- victim.Leave(ctx)
			} else {
				drained <- victim.Drain(ctx)
			}
		}()
		return nil
	}
	lc.Settle = settleAll(members...)
	res, err := load(ctx, env, w, nc, cfg, lc)
	if err != nil {
		return loadError(w, res, err)
	}
	if err := <-drained; err != nil {
		return err
	}

	// What the drained member did: it took some requests and answered all
	// of them, each reply counted by the requester.
	writeBars(w, res, names(members), true, "", true)
	took, answered, got := victim.Received(), victim.Answered(), countOf(res, victim.Name)
	fmt.Fprintln(w, drainedLine(victim.Name, took, answered, got, res))
	// On a cluster, a request the requester's node routed to worker-1's
	// node just after worker-1 left finds nobody there and is dropped:
	// NATS gives no guarantee for it. It is counted as such, not as a
	// success and not as a bug; -retry recovers it.
	if lost := inTransit(res, cfg.Retry); lost > 0 && env.MultiNode() && victim.Server != cli.ServerName(nc) {
		writeInTransit(w, lost, victim.Name, cfg.Retry)
		if res.TimedOut > 0 {
			fmt.Fprintf(w, "counted: %d of %d requests answered exactly once, %d lost in transit, 0 duplicated\n",
				res.Answered, res.Requests, res.TimedOut)
			return nil
		}
	}
	line, err := verdict(res, 1)
	fmt.Fprintln(w, line)
	if err != nil {
		return err
	}
	if took != answered || int64(got) != answered {
		return fmt.Errorf("%s took %d requests, answered %d, and %d of its replies arrived: %w",
			victim.Name, took, answered, got, ErrNotVerified)
	}
	return nil
}

// runScale is -demo scale: cfg.Workers members share cfg.Requests requests
// and, just before the request a third of the way in, a new member joins
// the group. The requests from that one on wait until its subscription is
// flushed, so the server routes to it from then on, picking it at random as
// often as any other member. The bar chart shows it taking its share; the
// error wraps ErrNotVerified if a request was not answered exactly once.
func runScale(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	members, nc, err := startGroup(ctx, env, cfg, w)
	if err != nil {
		return err
	}
	at, newcomer := changeAt(cfg.Requests), workerName(cfg.Workers+1)
	fmt.Fprintf(w, "%s joins just before request %d is sent\n", newcomer, at)

	lc := loadConfig(cfg)
	lc.At = at
	lc.Before = func(ctx context.Context) error {
		added, err := startWorkers(env, cfg, cfg.Workers+1, 1, nil)
		if err != nil {
			return err
		}
		members = append(members, added...)
		// The requests that follow count the newcomer's share: not before
		// its interest is visible from the requester's node.
		return awaitMembers(ctx, env, w, nc, cfg, probe.AllOf(names(members)...))
	}
	// Settle reads members when it runs, after Before has added the
	// newcomer, so it settles every member.
	lc.Settle = func(ctx context.Context) error { return settleAll(members...)(ctx) }
	res, err := load(ctx, env, w, nc, cfg, lc)
	if err != nil {
		return loadError(w, res, err)
	}

	writeBars(w, res, names(members), true, "", true)
	fmt.Fprintf(w, "%s joined before request %d of %d and answered %s\n",
		newcomer, at, cfg.Requests, plural(countOf(res, newcomer), "request"))
	line, err := verdict(res, 1)
	fmt.Fprintln(w, line)
	return err
}

// inTransit is the number of requests of r that can only have been lost on
// their way to a member that had just left: they timed out (or, with
// retry, timed out once), and nothing else went wrong (no failed request,
// no duplicate, late, repeated or error reply); 0 otherwise.
func inTransit(r *Result, retry bool) int {
	if r.Failed > 0 || r.Duplicates > 0 || r.Late > 0 || r.Repeated > 0 || r.Errors > 0 {
		return 0
	}
	if retry {
		return r.Retried
	}
	return r.TimedOut
}

// countOf is the number of counted replies from the member named name.
func countOf(r *Result, name string) int {
	if m := r.Member(name); m != nil {
		return m.Count()
	}
	return 0
}

// drainedLine says what the drained member named name did: it took took
// requests and sent answered replies, got of them counted. The others'
// share is what they answered in time; when requests timed out, "the
// remaining" would be wrong (those the others answered late are not
// counted), so the line says how many timed out instead.
func drainedLine(name string, took, answered int64, got int, res *Result) string {
	if took != answered {
		return fmt.Sprintf("%s took %s before it left but answered only %d", name, plural(int(took), "request"), answered)
	}
	line := fmt.Sprintf("%s took %s before it left and answered all of them", name, plural(int(took), "request"))
	if res.TimedOut > 0 {
		return line + fmt.Sprintf("; the others answered %d in time, and %s timed out", res.Answered-got, plural(res.TimedOut, "request"))
	}
	return line + fmt.Sprintf("; the others took the remaining %d", res.Answered-got)
}

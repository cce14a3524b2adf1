package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	"reqreply/internal/cli"
	"reqreply/probe"
)

// This file puts plain subscribers and two queue groups on one subject.

// Listeners and AuditMembers are the sizes of the other subscribers the mixed
// demo puts on Subject beside the workers: 2 plain subscribers and a second
// queue group of 2.
const (
	Listeners    = 2
	AuditMembers = 2
)

// runMixed is -demo mixed: on one subject, cfg.Workers members of Group,
// AuditMembers members of AuditGroup, and Listeners plain subscribers. NATS
// delivers each message to every plain subscriber and to one member of each
// queue group, picked at random within the group. The listeners only count
// (a plain subscriber that replied would add a reply to every request); the
// members of both groups reply, so the requester gathers two replies per
// request, one from each group. The run verifies both: each listener got
// every request, and each request was answered exactly once by each group;
// the error wraps ErrNotVerified otherwise.
func runMixed(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	// Three kinds of subscriber on one subject, each on its own connection.
	workers, err := startWorkers(env, cfg, 1, cfg.Workers, nil)
	if err != nil {
		return err
	}
	var auditors, listeners []*Member
	for i := 1; i <= AuditMembers; i++ {
		// The round-robin over the nodes goes on after the workers.
		node := env.ResponderNode(cfg.Workers + i - 1)
		m, err := joinOn(env, node, Subject, AuditGroup, fmt.Sprintf("auditor-%d", i), MemberOptions{})
		if err != nil {
			return err
		}
		auditors = append(auditors, m)
	}
	for i := 1; i <= Listeners; i++ {
		node := env.ResponderNode(cfg.Workers + AuditMembers + i - 1)
		m, err := joinOn(env, node, Subject, "", fmt.Sprintf("listener-%d", i), MemberOptions{Silent: true})
		if err != nil {
			return err
		}
		listeners = append(listeners, m)
	}
	nc, err := connectRequester(env)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "on %q: queue group %q (%s), queue group %q (%s), %s; %s, %d in flight\n",
		Subject, Group, plural(len(workers), "member"), AuditGroup, plural(len(auditors), "member"),
		plural(len(listeners), "plain subscriber"), plural(cfg.Requests, "request"), min(cfg.Concurrency, cfg.Requests))
	all := slices.Concat(workers, auditors, listeners)
	writePlacement(w, env, all, nc)
	// A plain subscriber whose interest has not reached the requester's
	// node would miss the first requests: wait until every subscriber,
	// listeners included, has answered a readiness probe.
	if err := awaitMembers(ctx, env, w, nc, cfg, probe.AllOf(names(all)...)); err != nil {
		return err
	}

	// Each request waits for two replies, one per group. Settling every
	// subscriber afterwards makes the listeners' counts final: each is
	// settled from the requester, so that a copy still crossing a route
	// is waited for, not read as missing (settlePlain).
	lc := loadConfig(cfg)
	lc.Replies = 2
	lc.Settle = settleFrom(nc, all...)
	res, err := load(ctx, env, w, nc, cfg, lc)
	if err != nil {
		return loadError(w, res, err)
	}

	// The picture: each group split its copy of the requests among its
	// members; each listener saw all of them.
	fmt.Fprintf(w, "queue group %q, one member per request:\n", Group)
	writeBars(w, res, names(workers), false, "  ", false)
	fmt.Fprintf(w, "queue group %q, one member per request:\n", AuditGroup)
	writeBars(w, res, names(auditors), false, "  ", false)
	fmt.Fprintln(w, "plain subscribers, every request each:")
	// A plain subscriber also sees each retried copy of a request.
	sent := int64(cfg.Requests + res.Retried)
	for _, l := range listeners {
		fmt.Fprintf(w, "  %s received %d of %d\n", l.Name, l.Received(), sent)
	}

	// The checks: every listener saw every request sent, and every request
	// got exactly one reply from each group.
	// A count read before every copy could arrive (Result.Unsettled: a
	// listener still busy or disconnected at the end) is short by copies
	// in flight, not by copies lost: the error says so.
	for _, l := range listeners {
		if got := l.Received(); got != sent {
			if res.Unsettled && got < sent {
				return fmt.Errorf("%s received %d of %d requests sent, the other %d possibly still in flight (counting ended before they could arrive): %w",
					l.Name, got, sent, sent-got, ErrNotVerified)
			}
			return fmt.Errorf("%s received %d of %d requests sent: %w", l.Name, got, sent, ErrNotVerified)
		}
	}
	// Each request must have been answered by one member of each group,
	// over all its attempts: a retry after one group had answered makes
	// that group answer twice, which PerRequest shows and Exact refuses
	// (Result.Repeated).
	group := map[string]string{}
	for _, m := range slices.Concat(workers, auditors) {
		group[m.Name] = m.Group
	}
	// The counts first: a request answered more than once per group over
	// its attempts (a retry after one group had answered) fails them.
	line, err := verdict(res, 2)
	if err != nil {
		fmt.Fprintln(w, line)
		if i := slices.IndexFunc(res.PerRequest, func(who []string) bool { return len(who) > 2 }); i >= 0 {
			fmt.Fprintf(w, "for example request %d, answered by %v over its attempts\n", i+1, res.PerRequest[i])
		}
		return err
	}
	// Then the groups: two replies, one from each.
	for i, who := range res.PerRequest {
		if len(who) != 2 || group[who[0]] == group[who[1]] {
			fmt.Fprintf(w, "NOT verified: request %d answered by %v\n", i+1, who)
			return fmt.Errorf("request %d answered by %v, want one member of %q and one of %q: %w", i+1, who, Group, AuditGroup, ErrNotVerified)
		}
	}
	fmt.Fprintln(w, line)
	fmt.Fprintf(w, "so a requester gathering replies gets one from each queue group, and plain subscribers see every request\n")
	return nil
}

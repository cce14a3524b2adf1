package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/hedge"
	"reqreply/internal/cli"
	"reqreply/probe"
)

// This file measures what one slow member does to a queue group's latency.

// slowSetup is one row of the slow demo: how many members, how many
// requests in flight.
type slowSetup struct {
	workers, concurrency int
}

// slowSetups are the rows the slow demo measures for cfg: the group as
// asked with one request in flight, then with many in flight (cfg's
// concurrency, or 16 if that is 1), then twice the members with each.
func slowSetups(cfg Config) []slowSetup {
	many := cfg.Concurrency
	if many == 1 {
		many = 16
	}
	return []slowSetup{
		{cfg.Workers, 1},
		{cfg.Workers, many},
		{2 * cfg.Workers, 1},
		{2 * cfg.Workers, many},
	}
}

// runSlow is -demo slow: worker-1 takes cfg.Slow (DefaultSlowDemo, 10 ms,
// if 0) longer per request than the others. A queue group picks a member at
// random for each message, not by how busy it is, so worker-1 keeps getting
// its even share, and the requests it gets wait behind each other in its
// client: it handles one at a time. The demo measures, for a few set-ups
// (slowSetups), worker-1's share, the latency percentiles of all requests
// and of worker-1's, the throughput and any timeouts, one row each, with
// fresh members per row. More members shrink the slow member's share; fewer
// requests in flight shorten the queue in front of it (each request waits
// behind at most concurrency − 1 others). Timing is measured and shown,
// never asserted; timeouts are reported, not an error.
func runSlow(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	if cfg.Slow == 0 {
		cfg.Slow = DefaultSlowDemo
	}
	nc, err := connectRequester(env)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s takes %v longer per request than the others; %s per row, timeout %v\n",
		workerName(1), cfg.Slow, plural(cfg.Requests, "request"), cfg.Timeout)
	fmt.Fprintf(w, "%-8s %-9s %-14s %-9s %-9s %-9s %-13s %-8s %s\n",
		"workers", "in flight", "worker-1 share", "p50", "p90", "p99", "worker-1 p99", "req/s", "timed out")
	for _, setup := range slowSetups(cfg) {
		row := cfg
		row.Workers, row.Concurrency = setup.workers, setup.concurrency
		res, err := slowRow(ctx, env, nc, row)
		if err != nil {
			return err
		}
		var all []time.Duration
		for _, m := range res.Members {
			all = append(all, m.Latencies...)
		}
		slices.Sort(all)
		share, p99slow := 0.0, "-"
		if m := res.Member(workerName(1)); m != nil && res.Answered > 0 {
			share = 100 * float64(m.Count()) / float64(res.Answered)
			p99slow = ms(hedge.Percentile(m.Latencies, 99))
		}
		fmt.Fprintf(w, "%-8d %-9d %-14s %-9s %-9s %-9s %-13s %-8.0f %d\n",
			row.Workers, min(row.Concurrency, row.Requests), fmt.Sprintf("%.0f%%", share),
			ms(hedge.Percentile(all, 50)), ms(hedge.Percentile(all, 90)), ms(hedge.Percentile(all, 99)), p99slow,
			res.Throughput(), res.TimedOut)
	}
	fmt.Fprintf(w, "queue groups pick members at random, not by load: %s keeps its share and its requests queue behind each other;\n", workerName(1))
	fmt.Fprintln(w, "more members shrink its share, fewer requests in flight shorten its queue")
	return nil
}

// slowRow runs one row of the slow demo with fresh members and drains them
// afterwards, so the next row starts with a group of its own.
func slowRow(ctx context.Context, env *cli.Env, nc *nats.Conn, cfg Config) (*Result, error) {
	members, err := startWorkers(env, cfg, 1, cfg.Workers, nil)
	if err != nil {
		return nil, err
	}
	// Not a request before every member is visible from the requester's
	// node (on one server, the first probe shows it). The table has no
	// room for the wait; it is not printed.
	if err := awaitMembers(ctx, env, io.Discard, nc, cfg, probe.AllOf(names(members)...)); err != nil {
		return nil, err
	}
	lc := loadConfig(cfg)
	lc.Settle = settleAll(members...)
	res, err := Load(ctx, nc, lc)
	var wg sync.WaitGroup
	errs := make([]error, len(members))
	for i, m := range members {
		wg.Go(func() { errs[i] = m.Drain(ctx) })
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// The next row's group starts clean: once a probe gets no responders,
	// the drained members' interest has left the requester's node too, and
	// no request of the next row can be routed to where they were.
	if _, err := probe.AwaitNone(ctx, nc, Subject, cli.SetupTimeout(cfg.Timeout)); err != nil {
		return nil, err
	}
	return res, nil
}

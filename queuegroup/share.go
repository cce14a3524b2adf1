package main

import (
	"context"
	"fmt"
	"io"

	"reqreply/internal/cli"
	"reqreply/probe"
)

// This file is the default demo: a queue group sharing requests.

// runShare is -demo share, the default: cfg.Workers members in Group on
// Subject share cfg.Requests requests, cfg.Concurrency in flight. It prints
// how many each member answered as a bar chart with each member's p50/p99
// latency, how even the split is (max/min and chi-square), the throughput,
// and whether every request got exactly one reply; the error wraps
// ErrNotVerified when one did not.
//
// With -serve it only starts the members and serves until ctx ends; with
// -request it only sends the requests, to members elsewhere (another
// `go run ./queuegroup -serve`, or `nats reply queuegroup.work --queue
// workers`), and names them by their replies.
func runShare(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	// The members: each on its own connection, subscribed and flushed, so
	// the server routes to all of them from the first request on.
	var members []*Member
	if cfg.Mode.Serves() {
		var err error
		if members, err = startWorkers(env, cfg, 1, cfg.Workers, nil); err != nil {
			return err
		}
		if cfg.Mode.Serve {
			fmt.Fprintf(w, "serving queue group %q on %q with %s until interrupted (try: nats request %s hi)\n",
				Group, Subject, plural(cfg.Workers, "member"), Subject)
			return cli.WaitForInterrupt(ctx)
		}
	}

	// The requester, on a connection of its own: cfg.Requests requests,
	// cfg.Concurrency at a time, every reply collected on one inbox.
	nc, err := connectRequester(env)
	if err != nil {
		return err
	}
	// No request before the members' interest is visible from the
	// requester's node: every member's, when they are ours; anyone's,
	// when they run elsewhere.
	want := probe.AllOf(names(members)...)
	if cfg.Mode.Request {
		fmt.Fprintf(w, "requests on %q to members running elsewhere: %s, %d in flight, timeout %v\n",
			Subject, plural(cfg.Requests, "request"), min(cfg.Concurrency, cfg.Requests), cfg.Timeout)
		want = probe.AnyResponder()
	} else {
		writeHeader(w, cfg, len(members))
		writePlacement(w, env, members, nc)
	}
	if err := awaitMembers(ctx, env, w, nc, cfg, want); err != nil {
		return err
	}
	lc := loadConfig(cfg)
	lc.Settle = settleAll(members...)
	res, err := load(ctx, env, w, nc, cfg, lc)
	if err != nil {
		return loadError(w, res, err)
	}

	// The picture: who took how many, how fast, and how even that is.
	writeBars(w, res, names(members), true, "", true)
	_, counts := countsOf(res, names(members), true)
	writeSpread(w, counts)
	writeThroughput(w, res, cfg.Concurrency)
	line, err := verdict(res, 1)
	fmt.Fprintln(w, line)
	return err
}

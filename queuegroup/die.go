package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/probe"
)

// This file is about members that go away: one that dies without a word,
// and all of them leaving, after which a request fails fast.

// DieAt is the request at which worker-1 dies in -demo die: as it takes its
// 2nd, having answered the 1st.
const DieAt = 2

// runDie is -demo die: worker-1 dies abruptly as it takes its DieAt-th
// request. It closes its connection without draining, as a crashed process
// does: the request in its hands and those queued in its client are never
// answered, and time out at the requester after cfg.Timeout; the server
// drops the member when the connection goes, and routes later requests to
// the others. The run counts and reports the timed-out requests. With
// cfg.Retry each is re-sent once and answered by a live member, which is
// only safe if the handler is idempotent: the dead member may have done the
// work before it died, so the request may run twice.
//
// The lost requests are the point of the demo and no error; the error wraps
// ErrNotVerified when a reply came twice, or, with cfg.Retry, when a
// request stayed unanswered.
func runDie(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	members, err := startWorkers(env, cfg, 1, cfg.Workers, func(i int, o *MemberOptions) {
		if i == 1 {
			o.DieAt = DieAt
		}
	})
	if err != nil {
		return err
	}
	victim := members[0]
	nc, err := connectRequester(env)
	if err != nil {
		return err
	}
	writeHeader(w, cfg, len(members))
	writePlacement(w, env, members, nc)
	if err := awaitMembers(ctx, env, w, nc, cfg, probe.AllOf(names(members)...)); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s dies (closes its connection without draining) as it takes its request #%d\n", victim.Name, DieAt)

	// A retry must not be routed to the dead member: before the first one,
	// wait until it has closed (if it is dying at all; a request can also
	// time out for other reasons).
	lc := loadConfig(cfg)
	lc.BeforeRetry = func(ctx context.Context) error {
		if victim.Received() < DieAt {
			return nil
		}
		select {
		case <-victim.Died():
		case <-ctx.Done():
			return ctx.Err()
		}
		if cfg.afterDeath != nil {
			return cfg.afterDeath(ctx)
		}
		return nil
	}
	lc.Settle = settleAll(members...)
	res, err := load(ctx, env, w, nc, cfg, lc)
	if err != nil {
		return loadError(w, res, err)
	}
	writeBars(w, res, names(members), true, "", true)

	// What was lost, and what the retry did about it.
	select {
	case <-victim.Died():
	default:
		fmt.Fprintf(w, "%s never took a request #%d, so it did not die (try more -requests)\n", victim.Name, DieAt)
		line, err := verdict(res, 1)
		fmt.Fprintln(w, line)
		return err
	}
	fmt.Fprintln(w, lostLine(victim.Name, res, cfg))
	if !cfg.Retry {
		fmt.Fprintf(w, "lost: %d of %d requests timed out; %d answered exactly once, %d duplicated (run with -retry to re-send a timed-out request once)\n",
			res.TimedOut, res.Requests, res.Answered, res.Duplicates)
		if res.Duplicates > 0 || res.Late > 0 {
			return fmt.Errorf("%d duplicate and %d late replies: %w", res.Duplicates, res.Late, ErrNotVerified)
		}
		return nil
	}
	fmt.Fprintf(w, "retry: re-sent %s once: %d answered by the members left\n", plural(res.Retried, "timed-out request"), res.RetryAnswered)
	fmt.Fprintf(w, "a retry is safe only if the handler is idempotent: %s may have done the work and died before replying, so a retried request may run twice\n", victim.Name)
	// On a cluster, a retry sent before the requester's node has learned
	// of the death can be routed to the dead member's node again and be
	// lost there: no guarantee, counted as such.
	if res.TimedOut > 0 && env.MultiNode() && victim.Server != cli.ServerName(nc) && inTransit(res, false) > 0 {
		writeInTransit(w, res.TimedOut, victim.Name, false)
		fmt.Fprintf(w, "counted: %d of %d requests answered exactly once, %d lost in transit, 0 duplicated\n", res.Answered, res.Requests, res.TimedOut)
		return nil
	}
	line, err := verdict(res, 1)
	fmt.Fprintln(w, line)
	return err
}

// lostLine says which requests the dead member took with it: those that
// timed out (with cfg.Retry, those retried). When replies also came late,
// the members left were answering after the timeout too, and not every
// timed-out request was the dead member's: the line says so rather than
// blame it for all of them.
func lostLine(victim string, res *Result, cfg Config) string {
	lost := res.TimedOut
	if cfg.Retry {
		lost = res.Retried
	}
	if res.Late > 0 {
		return fmt.Sprintf("%s got no reply within %v: those %s held, and others the members left answered too late (%d late replies: the timeout is too short for this load)",
			plural(lost, "request"), cfg.Timeout, victim, res.Late)
	}
	return fmt.Sprintf("%s died holding %s: no reply within %v", victim, plural(lost, "request"), cfg.Timeout)
}

// runGone is -demo gone: cfg.Workers members answer cfg.Requests requests,
// then every member drains its connection; once they have, the server has
// no subscriber on Subject, and the next request fails at once with
// nats.ErrNoResponders (the server answers it with status 503) instead of
// waiting out cfg.Timeout. Drain is what makes this exact: it returns after
// the server has acknowledged the members' UNSUBs, so the request that
// follows finds no interest. The error wraps ErrNotVerified if the first
// requests were not answered exactly once, and is an error too if the last
// request is answered or fails otherwise.
func runGone(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	members, nc, err := startGroup(ctx, env, cfg, w)
	if err != nil {
		return err
	}
	lc := loadConfig(cfg)
	lc.Settle = settleAll(members...)
	res, err := load(ctx, env, w, nc, cfg, lc)
	if err != nil {
		return loadError(w, res, err)
	}
	writeBars(w, res, names(members), true, "", false)
	line, err := verdict(res, 1)
	fmt.Fprintln(w, line)
	if err != nil {
		return err
	}

	// Every member leaves, all at once, as a scaled-down deployment does.
	var wg sync.WaitGroup
	errs := make([]error, len(members))
	for i, m := range members {
		wg.Go(func() { errs[i] = m.Drain(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(w, "all %s drained: nobody subscribes to %q any more\n", plural(len(members), "member"), Subject)

	// On a cluster the requester's node learns of the departures
	// asynchronously; until it has, a request would be routed to a node
	// whose member is gone and time out. Wait until a probe gets no
	// responders: then their interest is gone everywhere the request
	// could go.
	p, err := probe.AwaitNone(ctx, nc, Subject, cli.SetupTimeout(cfg.Timeout))
	if err != nil {
		return fmt.Errorf("waiting for the members' interest to go: %w", err)
	}
	if showWait(env.MultiNode(), p, true) {
		fmt.Fprintf(w, "interest: waited %s for the members' interest to leave %s: %s\n", ms(p.Waited), cli.ServerName(nc), p)
	}

	// The next request: no responders, at once.
	n := cfg.Requests + 1
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	// denials.Request: nats.go's request, with a permissions denial returned
	// within a round trip instead of after the timeout.
	msg, err := denials.Request(rctx, nc, &nats.Msg{Subject: Subject, Data: []byte(strconv.Itoa(n))})
	cancel()
	took := time.Since(start)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		fmt.Fprintf(w, "request %d: %v\n", n, err)
		fmt.Fprintf(w, "it failed after %s, not after the %v timeout: the server knows nobody listens and says so at once\n", ms(took), cfg.Timeout)
		return nil
	case err == nil:
		return fmt.Errorf("request %d after every member left: answered by %q, want %v", n, msg.Data, nats.ErrNoResponders)
	default:
		return fmt.Errorf("request %d after every member left: %w", n, err)
	}
}

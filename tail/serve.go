// The halves apart: -serve runs only the members, -request only the
// requester, so they can run in separate terminals against one NATS_URL.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"

	"reqreply/hedge"
	"reqreply/internal/cli"
	"reqreply/probe"
)

// Serve is -serve: cfg.Members members, spread round-robin over NATS_URL's
// servers (one connection each, named on stderr when there are several),
// with the fault model cfg.Fault, each
// honouring DeadlineHeader, and with admission control at cfg.Admit when
// cfg.ServeAdmit, until ctx ends or a member's connection is closed for
// good (nats.go gave up reconnecting to a server that stayed away: by
// default after 60 attempts 2 s apart); then they drain. A lost server
// alone is not the end: nats.go reconnects, and resubscribes the members.
// The error is a member's, or one wrapping nats.ErrConnectionClosed naming
// the member whose connection closed.
func Serve(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	fault := faults(cfg)[cfg.Fault]
	admit := 0
	if cfg.ServeAdmit {
		admit = cfg.Admit
	}
	var members []*Member
	var err error
	for i := 1; i <= cfg.Members && err == nil; i++ {
		var m *Member
		opts := fault(i)
		opts.Propagate, opts.Admit, opts.Node = true, admit, memberNode(env, i)
		m, err = startMember(env, memberName(i), opts)
		if err == nil {
			members = append(members, m)
		}
	}
	if err == nil {
		fmt.Fprintf(w, "%d members (fault %s, admission k=%d, 0 is off) serve %s in group %q; Ctrl-C to stop\n",
			len(members), cfg.Fault, admit, Subject, Group)
		err = untilClosed(ctx, members)
	}
	// All at once: each drain is bounded by cli.DrainTimeout, so a lost
	// server costs one timeout, not one per member.
	return errors.Join(err, StopAll(ctx, members))
}

// Request is -request: cfg.Requests requests with the requester side of
// pattern cfg.Pattern, against members running elsewhere, and one line of
// figures. Wasted work is the members' to count; the requester shows the
// replies it dropped instead. The error is the connection's, or a request's
// other than a timeout or no responders, or ctx's when it ends first (then
// it prints how many requests finished, and no figures). Before the first
// request it waits until a member answers a readiness probe from the
// requester's own server (on a cluster, the members' interest reaches it
// asynchronously), and prints the wait when there was one; nobody serving
// Subject is an error wrapping nats.ErrNoResponders, within about 500 ms
// (probe.NoRespondersFor). A denied publish or inbox subscription is an
// error wrapping nats.ErrPermissionViolation that names the subject,
// within about one round trip (Client.Request). The members' side
// of a pattern (deadline propagation, admission control) is -serve's: its
// members always honour the deadline header, and admit only with -admit.
func Request(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	p, _ := patternByName(cfg, cfg.Pattern)
	nc, err := connectRequester(env)
	if err != nil {
		return err
	}
	c, err := newClient(nc, p.Policy)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := awaitClient(ctx, c, w, Subject, probe.AnyResponder(), cfg.Timeout); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(w, "%s: interrupted after 0 of %d requests\n", p.Name, cfg.Requests)
			return ctx.Err()
		}
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	res, err := LoadWatched(ctx, c, Subject, LoadConfig{Requests: cfg.Requests, Concurrency: cfg.Concurrency, Timeout: cfg.Timeout})
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	if err := ctx.Err(); err != nil {
		// Interrupted: the figures of part of a run would read as a whole.
		fmt.Fprintf(w, "%s: interrupted after %d of %d requests\n", p.Name, res.Answered+res.TimedOut+res.NoResponders+res.Wrong, cfg.Requests)
		return err
	}
	if res.FirstError != nil {
		return res.FirstError
	}
	if err := c.Settle(ctx); err != nil {
		return err
	}
	st := c.Stats()
	extra := 0.0
	if res.Requests > 0 {
		extra = 100 * float64(st.Hedges+st.Retries) / float64(res.Requests)
	}
	fmt.Fprintf(w, "%s: %d requests, p50 %s, p99 %s, p99.9 %s, extra %.1f%%, replies dropped %d, timed out %d, no responders %d, wrong replies %d\n",
		p.Name, res.Requests, ms(hedge.Percentile(res.Latencies, 50)), ms(hedge.Percentile(res.Latencies, 99)), ms(hedge.Percentile(res.Latencies, 99.9)),
		extra, st.Dropped, res.TimedOut, res.NoResponders, res.Wrong)
	return nil
}

// untilClosed waits until ctx ends (nil: the normal end of -serve) or the
// connection of one of members is closed (an error wrapping
// nats.ErrConnectionClosed naming it).
func untilClosed(ctx context.Context, members []*Member) error {
	wctx, cancel := context.WithCancel(ctx) // ends the watchers on return
	defer cancel()
	closed := make(chan string, len(members))
	for _, m := range members {
		ch := m.nc.StatusChanged(nats.CLOSED)
		defer m.nc.RemoveStatusListener(ch)
		if m.nc.IsClosed() {
			closed <- m.Name
			continue
		}
		go func() {
			select {
			case <-ch:
				closed <- m.Name
			case <-wctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case name := <-closed:
		return fmt.Errorf("%s: %w (nats.go gave up reconnecting)", name, nats.ErrConnectionClosed)
	}
}

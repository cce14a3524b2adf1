// -expect: a gather that knows when it is done. Micro service instances,
// discovered with $SRV.PING, answer one request each, and the gather ends at
// the last expected answer instead of at its deadline.

package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"reqreply/gather"
	"reqreply/internal/cli"
)

// Instance is one running instance of DiscoverService started by -expect.
type Instance struct {
	Name    string // "instance-<i>", its connection's name
	ID      string // micro's instance id, in ResponderHeader of its replies
	Delay   time.Duration
	Service micro.Service
	Conn    *nats.Conn
}

// StartInstances starts one instance of DiscoverService on each connection,
// the ith answering every request on DiscoverEndpoint after delays[i] with
// "hello from instance-<i+1>". Its endpoint has no queue group, unlike
// -discover's, so every instance answers each request (the subject and
// service are -discover's, so that -secure's permissions cover -expect
// too), and is wrapped with gather.Identify, so each reply names its
// instance id in ResponderHeader. When ctx ends, an
// instance still in its delay drops the request. Errors: micro's
// (AddService, AddEndpoint) or the flush's.
func StartInstances(ctx context.Context, conns []*nats.Conn, delays []time.Duration) ([]Instance, error) {
	var out []Instance
	stop := func() {
		for _, in := range out {
			_ = in.Service.Stop()
		}
	}
	for i, nc := range conns {
		name := fmt.Sprintf("instance-%d", i+1)
		svc, err := micro.AddService(nc, micro.Config{Name: DiscoverService, Version: "1.0.0", Description: "says hello"})
		if err != nil {
			stop()
			return nil, fmt.Errorf("start %s %s: %w", DiscoverService, name, err)
		}
		in := Instance{Name: name, ID: svc.Info().ID, Delay: delays[i], Service: svc, Conn: nc}
		out = append(out, in)
		h := micro.HandlerFunc(func(r micro.Request) {
			t := time.NewTimer(in.Delay)
			defer t.Stop()
			select {
			case <-t.C:
				_ = r.Respond([]byte("hello from " + name))
			case <-ctx.Done():
			}
		})
		if err := svc.AddEndpoint("greet", gather.Identify(in.ID, h),
			micro.WithEndpointSubject(DiscoverEndpoint), micro.WithEndpointQueueGroupDisabled()); err != nil {
			stop()
			return nil, fmt.Errorf("start %s %s: endpoint: %w", DiscoverService, name, err)
		}
		if err := nc.FlushTimeout(nc.Opts.Timeout); err != nil {
			stop()
			return nil, fmt.Errorf("start %s %s: flush: %w", DiscoverService, name, err)
		}
	}
	return out, nil
}

// runExpect starts cfg.Responders instances of DiscoverService (unless
// -request), each on its own connection spread over the nodes with a delay
// from DemoResponders; discovers them (gather.Discover, after their
// interest is visible: awaitInstances); stops the first cfg.Kill of them;
// then gathers one request on DiscoverEndpoint with gather.Expect over the
// discovered ids, and prints each reply, the timeline, the slowest reply
// and who did not answer.
func runExpect(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	var instances []Instance
	if cfg.Mode.Serves() {
		ictx, stop := context.WithCancel(ctx)
		defer stop()
		var conns []*nats.Conn
		var delays []time.Duration
		for i, r := range DemoResponders(cfg.Responders, cfg.Delay, cfg.Seed, false) {
			nc, err := env.ConnectNodeAs(cli.Responder, fmt.Sprintf("instance-%d", i+1), env.ResponderNode(i))
			if err != nil {
				return err
			}
			conns = append(conns, nc)
			delays = append(delays, r.Delay)
		}
		var err error
		if instances, err = StartInstances(ictx, conns, delays); err != nil {
			return err
		}
	}
	if cfg.Mode.Serve {
		fmt.Fprintf(w, "%d instances of %s at %s until interrupted\n", len(instances), DiscoverService, cli.Redact(env.URL))
		return cli.WaitForInterrupt(ctx)
	}
	v, release, err := connectVariant(env, "requester", cfg.Variant)
	if err != nil {
		return err
	}
	defer func() { _ = release() }()
	if err := awaitInstances(ctx, w, env, v, DiscoverService, len(instances)); err != nil {
		return err
	}

	// 1. The expected set: every instance answers $SRV.PING with its id.
	start := time.Now()
	ids, err := gather.Discover(ctx, v, DiscoverService)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "discovered %s of %s in %s\n", plural(len(ids), "instance", "instances"), DiscoverService, round(time.Since(start)))
	names := map[string]Instance{}
	for _, in := range instances {
		names[in.ID] = in
	}

	// 2. An instance dies after discovery, before the request.
	for _, in := range instances[:min(cfg.Kill, len(instances))] {
		if err := in.Service.Stop(); err != nil {
			return err
		}
		if err := in.Conn.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "killed %s (id %s)\n", in.Name, in.ID)
	}

	// 3. One request; the gather ends at the last expected answer.
	fmt.Fprintf(w, "request on %s via %s: deadline %v, expect %s\n", DiscoverEndpoint, v.Name(), cfg.Timeout, plural(len(ids), "instance", "instances"))
	s, err := v.Stream(ctx, DiscoverEndpoint, nil, append(cfg.options(), gather.Expect(ids...))...)
	if err != nil {
		return err
	}
	var at []time.Duration
	for r := range s.Replies() {
		at = append(at, r.At)
		fmt.Fprintf(w, "%9s  %-11s %-22s %s\n", "+"+round(r.At), names[r.Responder].Name, r.Responder, r.Msg.Data)
	}
	res, err := s.Result()
	fmt.Fprintln(w, Timeline(res, at...))
	if len(at) > 0 {
		slowest := slices.Max(at)
		fmt.Fprintf(w, "slowest reply at %s; the gather ended at %s (%.2f× the slowest), deadline %v\n",
			round(slowest), round(res.Elapsed), float64(res.Elapsed)/float64(slowest), cfg.Timeout)
	}
	for _, id := range res.Missing {
		fmt.Fprintf(w, "missing: %s (id %s)\n", names[id].Name, id)
	}
	for _, id := range res.Repeated {
		fmt.Fprintf(w, "answered more than once: %s (id %s)\n", names[id].Name, id)
	}
	return err
}

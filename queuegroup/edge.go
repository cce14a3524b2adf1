package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/hedge"
	"reqreply/internal/cli"
	"reqreply/probe"
)

// This file is where a queue request goes when NATS is more than one
// cluster: from a leaf node, and across the gateways of a supercluster. In
// both, the server a request is made on prefers the queue members nearest
// to it: a leaf node its own members over the hub's, a cluster its own
// members over another cluster's. Only when there is none near does the
// request cross the leaf connection or the gateway. Each demo runs three
// phases, each verified: the near member answers, it leaves and the far
// ones answer, a near member comes back and answers again.

// The members of the leaf and geo demos.
const (
	// LeafWorker is the member on the leaf node; HubWorkers are on the hub.
	LeafWorker = "leaf-worker"
	// HubWorkers is how many members the hub has: 2.
	HubWorkers = 2
	// GeoWorkers is how many members each of east and west has, one per
	// node: 2.
	GeoWorkers = 2
)

// phase is one verified step of the leaf or geo demo: cfg.Requests
// requests from nc, each of which must be answered exactly once, and only
// by one of want.
type phase struct {
	name string   // what the phase shows
	want []string // the members allowed to answer
}

// runPhase runs ph and writes one line per member that answered, its count
// and latency, then the phase's verdict. The error wraps ErrNotVerified
// when a request was not answered exactly once or was answered by a
// member outside ph.want.
func runPhase(ctx context.Context, env *cli.Env, w io.Writer, nc *nats.Conn, cfg Config, ph phase, members func() []*Member) error {
	fmt.Fprintf(w, "%s:\n", ph.name)
	lc := loadConfig(cfg)
	lc.Settle = func(ctx context.Context) error { return settleAll(members()...)(ctx) }
	res, err := load(ctx, env, w, nc, cfg, lc)
	if err != nil {
		return loadError(w, res, err)
	}
	var all []time.Duration
	var others []string
	for _, m := range res.Members {
		all = append(all, m.Latencies...)
		if !slices.Contains(ph.want, m.Name) {
			others = append(others, m.Name)
		}
	}
	slices.Sort(all)
	writeBars(w, res, ph.want, true, "  ", false)
	fmt.Fprintf(w, "  latency p50 %s  p99 %s\n", ms(hedge.Percentile(all, 50)), ms(hedge.Percentile(all, 99)))
	line, err := verdict(res, 1)
	fmt.Fprintf(w, "  %s\n", line)
	if err != nil {
		return err
	}
	if len(others) > 0 {
		return fmt.Errorf("%s: answered by %v, want only %v: %w", ph.name, others, ph.want, ErrNotVerified)
	}
	return nil
}

// runLeaf is -demo leaf, on an embedded hub with a leaf node (cli.Leaf):
// HubWorkers members on the hub and LeafWorker on the leaf, all in Group;
// the requester on the leaf. A leaf node delivers a queue message to a
// member of its own when it has one, and sends it over the leaf connection
// to the hub only when it has none. Phase 1: every request is answered by
// LeafWorker. Phase 2: LeafWorker drains, and once a probe shows the hub's
// members answering, every request is answered by them. Phase 3: a new
// LeafWorker joins, and once a probe reaches it, every request is answered
// by it again. Each phase is counted and verified, with its latency; the
// error wraps ErrNotVerified when a phase is not as described.
func runLeaf(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	nodes := env.Nodes()
	if len(nodes) != 2 {
		return cli.Usagef("-demo leaf needs its embedded hub and leaf node (NATS_URL unset)")
	}
	const hub, leaf = 0, 1
	var members []*Member
	var hubNames []string
	for i := 1; i <= HubWorkers; i++ {
		m, err := joinOn(env, hub, Subject, Group, fmt.Sprintf("hub-worker-%d", i), MemberOptions{})
		if err != nil {
			return err
		}
		members = append(members, m)
		hubNames = append(hubNames, m.Name)
	}
	local, err := joinOn(env, leaf, Subject, Group, LeafWorker, MemberOptions{})
	if err != nil {
		return err
	}
	members = append(members, local)
	nc, err := env.ConnectNodeAs(cli.Requester, "requester", leaf)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "queue group %q on %q: %s on the hub, %s on the leaf node; the requester on the leaf; %s per phase\n",
		Group, Subject, strings.Join(hubNames, " and "), LeafWorker, plural(cfg.Requests, "request"))
	current := func() []*Member { return members }

	// Phase 1: the leaf's own member is there, and local, so it is seen at
	// once; every request stays on the leaf.
	if err := awaitMembers(ctx, env, w, nc, cfg, probe.AnyOf(LeafWorker)); err != nil {
		return err
	}
	if err := runPhase(ctx, env, w, nc, cfg, phase{"1. the leaf has a member: requests stay on the leaf", []string{LeafWorker}}, current); err != nil {
		return err
	}

	// Phase 2: it drains. The leaf then has no member of its own and sends
	// the requests to the hub, once the hub's members' interest is known on
	// the leaf (a probe answered by one of them says so).
	if err := local.Drain(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s drained\n", LeafWorker)
	if err := awaitMembers(ctx, env, w, nc, cfg, probe.AnyOf(hubNames...)); err != nil {
		return err
	}
	if err := runPhase(ctx, env, w, nc, cfg, phase{"2. no member on the leaf: requests fail over to the hub", hubNames}, current); err != nil {
		return err
	}

	// Phase 3: a member comes back on the leaf; requests stay local again.
	back, err := joinOn(env, leaf, Subject, Group, LeafWorker, MemberOptions{})
	if err != nil {
		return err
	}
	members = append(members, back)
	fmt.Fprintf(w, "%s is back\n", LeafWorker)
	if err := awaitMembers(ctx, env, w, nc, cfg, probe.AnyOf(LeafWorker)); err != nil {
		return err
	}
	if err := runPhase(ctx, env, w, nc, cfg, phase{"3. a member on the leaf again: requests stay on the leaf", []string{LeafWorker}}, current); err != nil {
		return err
	}
	fmt.Fprintln(w, "so a leaf node serves its own requests while it can, and the hub covers for it when it cannot")
	return nil
}

// runGeo is -demo geo, on an embedded supercluster (cli.Supercluster): east
// and west, 2 nodes each, joined by gateways; GeoWorkers members in each
// cluster, one per node, all in Group; the requester on east-2. A cluster
// keeps a queue message among its own members while it has any, and sends
// it across a gateway only when it has none. Phase 1: every request is
// answered by an east member. Phase 2: both east members drain, and once a
// probe is answered from west (which means east-2 no longer sees an east
// member), every request crosses the gateway to a west member. Phase 3: a
// new east member joins on east-1, and once a probe reaches it, every
// request is answered in east again. Each phase is counted and verified,
// with its latency; the error wraps ErrNotVerified when a phase is not as
// described.
func runGeo(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	nodes := env.Nodes()
	if len(nodes) != 4 {
		return cli.Usagef("-demo geo needs its embedded supercluster (NATS_URL unset)")
	}
	var members, east []*Member
	var eastNames, westNames []string
	for i, n := range nodes {
		name := fmt.Sprintf("%s-worker-%d", n.Cluster, i%GeoWorkers+1)
		m, err := joinOn(env, i, Subject, Group, name, MemberOptions{})
		if err != nil {
			return err
		}
		members = append(members, m)
		if n.Cluster == "east" {
			east = append(east, m)
			eastNames = append(eastNames, name)
		} else {
			westNames = append(westNames, name)
		}
	}
	nc, err := env.ConnectNodeAs(cli.Requester, "requester", 1) // east-2
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "queue group %q on %q: %s in east, %s in west; the requester on %s; %s per phase\n",
		Group, Subject, strings.Join(eastNames, " and "), strings.Join(westNames, " and "), cli.ServerName(nc), plural(cfg.Requests, "request"))
	current := func() []*Member { return members }

	// Phase 1: both east members visible from east-2 (one crosses a route).
	if err := awaitMembers(ctx, env, w, nc, cfg, probe.AllOf(eastNames...)); err != nil {
		return err
	}
	if err := runPhase(ctx, env, w, nc, cfg, phase{"1. east has members: requests stay in east", eastNames}, current); err != nil {
		return err
	}

	// Phase 2: every east member drains. While east-2 still sees one on
	// east-1 it routes there, where nobody is left; a probe answered from
	// west shows that east-2 has learned they are gone.
	for _, m := range east {
		if err := m.Drain(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "%s drained: east has no member\n", strings.Join(eastNames, " and "))
	if err := awaitMembers(ctx, env, w, nc, cfg, probe.AnyOf(westNames...)); err != nil {
		return err
	}
	if err := runPhase(ctx, env, w, nc, cfg, phase{"2. no member in east: requests cross the gateway to west", westNames}, current); err != nil {
		return err
	}

	// Phase 3: one east member comes back, on east-1; once its interest
	// reaches east-2, requests stay in east again.
	backName := eastNames[0]
	back, err := joinOn(env, 0, Subject, Group, backName, MemberOptions{})
	if err != nil {
		return err
	}
	members = append(members, back)
	fmt.Fprintf(w, "%s is back on %s\n", backName, back.Server)
	if err := awaitMembers(ctx, env, w, nc, cfg, probe.AnyOf(backName)); err != nil {
		return err
	}
	if err := runPhase(ctx, env, w, nc, cfg, phase{"3. a member in east again: requests stay in east", []string{backName}}, current); err != nil {
		return err
	}
	fmt.Fprintln(w, "so a cluster serves its own requests while it has members, and the gateway carries them to another cluster only when it has none")
	return nil
}

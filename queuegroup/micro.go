package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/otelnats"
	"reqreply/probe"
	"reqreply/respond"
)

// This file serves the same work with github.com/nats-io/nats.go/micro,
// the NATS service framework: each instance is a queue group member without
// saying so, because micro subscribes every endpoint in its default queue
// group, "q", and it counts the requests each instance handled, which any
// client reads back from $SRV.STATS.

// The micro service's names.
const (
	// MicroService is the service's name, as `nats micro ls` shows it.
	MicroService = "queuegroup"
	// MicroEndpoint is its one endpoint's name.
	MicroEndpoint = "work"
	// MicroSubject is the endpoint's subject, apart from Subject so that
	// workers and instances can run side by side.
	MicroSubject = "queuegroup.micro"
	// MicroVersion is the service's version (micro requires SemVer).
	MicroVersion = "1.0.0"
	// instanceKey is the metadata key that names an instance in
	// $SRV.STATS, whose own ids are random.
	instanceKey = "instance"
)

// Instance is one running instance of the micro service.
type Instance struct {
	// Name is the instance's name: its replies' payload and metadata.
	Name string
	svc  micro.Service
	nc   *nats.Conn
}

// StartInstance adds the micro service on nc, a connection of its own, as
// an instance named name: endpoint MicroEndpoint on MicroSubject in micro's
// default queue group "q" (micro.DefaultQueueGroup), answering each request
// with name after delay (the slow instance of -slow). The endpoint's handler
// is a plain micro.Handler; probe.MicroHandler wraps it from outside, so a
// readiness probe is answered with name without reaching it (micro counts
// it all the same: runMicro resets the stats after the wait). micro also
// subscribes the instance to $SRV.PING, $SRV.INFO and $SRV.STATS (for all
// services, for this one by name, and for this instance by id).
// StartInstance flushes, so once it returns nil the server routes requests
// to the instance. The error wraps micro.ErrConfigValidation, the nats.go
// error of the flush, or nats.ErrPermissionViolation, naming the subject,
// when the server's permissions deny one of micro's subscriptions (the last
// one denied, when several are). After an error nc is left open.
func StartInstance(nc *nats.Conn, name string, delay time.Duration) (*Instance, error) {
	// micro makes its subscriptions itself, so they cannot go through
	// denials.SubscribeChecked. Instead, until the instance is known to be
	// allowed them, the connection's error handler keeps the permissions
	// violations to itself: the one StartInstance returns is then the only
	// report.
	starting := watchStart(nc)
	before := nc.LastError()
	reply := []byte(name)
	svc, err := micro.AddService(nc, micro.Config{
		Name:        MicroService,
		Version:     MicroVersion,
		Description: "the queuegroup scenario's work as a micro service",
		Metadata:    map[string]string{instanceKey: name},
	})
	if err != nil {
		// The connection is left open, as below.
		return nil, fmt.Errorf("%s: add service %q: %w", name, MicroService, err)
	}
	handler := micro.HandlerFunc(func(req micro.Request) {
		if delay > 0 {
			work(delay)
		}
		// A failed Respond (connection closing) leaves the requester to
		// time out; micro counts the error in the endpoint's stats.
		_ = req.Respond(reply)
	})
	err = svc.AddEndpoint(MicroEndpoint, probe.MicroHandler(name, otelnats.MicroHandler(handler)), micro.WithEndpointSubject(MicroSubject))
	if err == nil {
		err = nc.FlushTimeout(nc.Opts.Timeout)
	}
	// The server answered the flush after every SUB micro sent: a denied
	// one was read before the PONG and is the connection's last error
	// (new, as it differs from the one before).
	if last := nc.LastError(); err == nil && last != before && errors.Is(last, nats.ErrPermissionViolation) {
		err = last
	}
	if err != nil {
		// The connection is left open (to env.Close, which drains it):
		// closing it here would report a violation again, as the close's
		// reason.
		_ = svc.Stop() // the endpoint's error is the one to report
		return nil, fmt.Errorf("%s: endpoint %q on %q: %w", name, MicroEndpoint, MicroSubject, err)
	}
	starting.Store(false)
	return &Instance{Name: name, svc: svc, nc: nc}, nil
}

// startInstance connects a new instance named name to env's node node (an
// index in env.Nodes()) and starts it there (StartInstance). Under -secure
// the instance connects as the responder (cli.Responder), which may
// subscribe to MicroSubject and $SRV.> and publish only replies. After an
// error the connection, if made, is left for env.Close to drain.
func startInstance(env *cli.Env, node int, name string, delay time.Duration) (*Instance, error) {
	nc, err := env.ConnectNodeAs(cli.Responder, name, node)
	if err != nil {
		return nil, err
	}
	return StartInstance(nc, name, delay)
}

// watchStart chains nc's error handler so that the permissions violations
// it gets are dropped while the returned flag is set (it starts set): a
// caller that checks for them itself, after a flush, reports them once, in
// its own error. Other errors, and violations once the flag is cleared, go
// to the handler that was there (the Env's, which prints them).
func watchStart(nc *nats.Conn) *atomic.Bool {
	var starting atomic.Bool
	starting.Store(true)
	next := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
		if starting.Load() && errors.Is(err, nats.ErrPermissionViolation) {
			return
		}
		if next != nil {
			next(c, sub, err)
		}
	})
	return &starting
}

// Stop stops the instance's service: micro drains its subscriptions.
func (in *Instance) Stop() error {
	if err := in.svc.Stop(); err != nil {
		return fmt.Errorf("%s: stop: %w", in.Name, err)
	}
	return nil
}

// settle returns once the instance has handled, and counted, every message
// the server sent it before the call (see Member.Settle): micro counts a
// request after its handler returns, just after the reply went out, so a
// STATS read racing the last reply could otherwise be one short.
func (in *Instance) settle(ctx context.Context) error {
	return settle(ctx, in.Name, in.nc)
}

// InstanceStats is one instance's answer on $SRV.STATS.
type InstanceStats struct {
	// Name is the instance's name (its metadata), ID micro's id for it.
	Name, ID string
	// Endpoint holds the stats of MicroEndpoint: num_requests, num_errors,
	// processing_time, average_processing_time (ns in JSON).
	Endpoint micro.EndpointStats
}

// ID returns micro's id of the instance, as $SRV.STATS and $SRV.INFO show
// it: the one thing that tells instances apart when several processes run
// instances of the same name.
func (in *Instance) ID() string { return in.svc.Info().ID }

// ReadStats asks every instance of MicroService for its stats: one request
// on $SRV.STATS.queuegroup (micro.ControlSubject), which every instance
// answers, as each subscribes to it without a queue group. The replies are
// gathered on a fresh inbox, subscribed and flushed before the request,
// until timeout passes or, when expect is not empty, until every instance
// whose micro id is in expect has answered. Every instance that answered by
// then is returned, one entry per id (instances elsewhere with the same name
// are told apart by id), sorted by name, then id. Nothing says how many
// instances run elsewhere, so without expect ReadStats waits out timeout.
// Errors: nats.ErrNoResponders when no instance runs;
// nats.ErrPermissionViolation (and denials.ErrDenied), naming the subject, when
// the server's permissions deny the inbox or the request; nats.go's
// subscribe, publish and flush errors; a JSON error for a malformed reply;
// ctx's error; nats.ErrConnectionClosed, within a round trip, when nc
// closes while the replies are awaited. An
// instance in expect that did not answer is no error: the caller sees which.
func ReadStats(ctx context.Context, nc *nats.Conn, expect []string, timeout time.Duration) ([]InstanceStats, error) {
	subject, err := micro.ControlSubject(micro.StatsVerb, MicroService, "")
	if err != nil {
		return nil, err
	}
	inbox := nc.NewInbox()
	// Room for many instances without nats.go dropping replies as a slow
	// consumer.
	replies := make(chan *nats.Msg, 1024)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The inbox, subscribed and flushed before the request, and the
	// request, flushed too: each checked for a permissions violation on its
	// exact subject, so a user that may not read $SRV.STATS fails within a
	// round trip instead of waiting out timeout for replies that cannot
	// come.
	sub, err := denials.SubscribeChecked(tctx, nc, inbox, "", func() (*nats.Subscription, error) {
		return nc.ChanSubscribe(inbox, replies)
	})
	if err != nil {
		return nil, fmt.Errorf("stats %q: inbox: %w", subject, err)
	}
	defer func() { _ = sub.Unsubscribe() }() // done with it either way
	if err := denials.PublishChecked(tctx, nc, &nats.Msg{Subject: subject, Reply: inbox}); err != nil {
		return nil, fmt.Errorf("stats %q: %w", subject, err)
	}
	// A connection that closes while the replies are awaited ends the read
	// at once: nats.go closes nothing a channel subscription can see.
	closed := nc.StatusChanged(nats.CLOSED)
	defer nc.RemoveStatusListener(closed)
	if nc.IsClosed() {
		return nil, fmt.Errorf("stats %q: %w", subject, nats.ErrConnectionClosed)
	}
	missing := map[string]bool{}
	for _, id := range expect {
		missing[id] = true
	}
	byID := map[string]InstanceStats{}
	for len(expect) == 0 || len(missing) > 0 {
		select {
		case m := <-replies:
			if respond.IsNoResponders(m) {
				return nil, fmt.Errorf("stats %q: %w", subject, nats.ErrNoResponders)
			}
			var st micro.Stats
			if err := json.Unmarshal(m.Data, &st); err != nil {
				return nil, fmt.Errorf("stats %q: %w", subject, err)
			}
			is := InstanceStats{Name: st.Metadata[instanceKey], ID: st.ID}
			for _, e := range st.Endpoints {
				if e.Name == MicroEndpoint {
					is.Endpoint = *e
				}
			}
			byID[st.ID] = is
			delete(missing, st.ID)
		case <-closed:
			return nil, fmt.Errorf("stats %q: %w", subject, nats.ErrConnectionClosed)
		case <-tctx.Done():
			if ctx.Err() != nil {
				return nil, fmt.Errorf("stats %q: %w", subject, ctx.Err())
			}
			return sortedStats(byID), nil
		}
	}
	return sortedStats(byID), nil
}

// sortedStats returns the stats by name, then id.
func sortedStats(byID map[string]InstanceStats) []InstanceStats {
	out := make([]InstanceStats, 0, len(byID))
	for _, st := range byID {
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b InstanceStats) int {
		if c := compareNames(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// runMicro is -demo micro: cfg.Workers instances of MicroService, each on
// its own connection, share cfg.Requests requests on MicroSubject through
// micro's default queue group "q". It prints the split as the replies show
// it, then each instance's num_requests read back from $SRV.STATS, and
// verifies that the two agree and that every request got exactly one
// reply; the error wraps ErrNotVerified otherwise.
//
// With -serve it starts the instances and serves until ctx ends (try `nats
// micro ls`, `nats micro stats queuegroup`); with -request it sends the
// requests to instances elsewhere and prints their stats as read (counts
// since each instance started, readiness probes included, so they are not
// compared).
func runMicro(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	// The instances: one service each, stopped (drained) when the run ends.
	var instances []*Instance
	defer func() {
		for _, in := range instances {
			// Stopping is tidying up; the run's result is already known.
			_ = in.Stop()
		}
	}()
	if cfg.Mode.Serves() {
		for i := 1; i <= cfg.Workers; i++ {
			delay := time.Duration(0)
			if i == 1 {
				delay = cfg.Slow
			}
			in, err := startInstance(env, env.ResponderNode(i-1), fmt.Sprintf("instance-%d", i), delay)
			if err != nil {
				return err
			}
			instances = append(instances, in)
		}
		if cfg.Mode.Serve {
			fmt.Fprintf(w, "serving micro service %q (endpoint %q on %q, queue group %q) with %s until interrupted (try: nats micro stats %s)\n",
				MicroService, MicroEndpoint, MicroSubject, micro.DefaultQueueGroup, plural(cfg.Workers, "instance"), MicroService)
			return cli.WaitForInterrupt(ctx)
		}
	}

	// The same load as the workers get, on the endpoint's subject, once
	// every instance's interest is visible from the requester's node (any
	// instance's, with -request). micro counts the probes too, so the
	// instances' stats are reset afterwards.
	nc, err := connectRequester(env)
	if err != nil {
		return err
	}
	want := probe.AnyResponder()
	if !cfg.Mode.Request {
		var all []string
		for _, in := range instances {
			all = append(all, in.Name)
		}
		// Settled: no probe may still be on its way when the stats are
		// reset.
		want = probe.AllOf(all...).Settled()
	}
	p, err := probe.Await(ctx, nc, MicroSubject, want, cli.SetupTimeout(cfg.Timeout))
	if err != nil {
		return fmt.Errorf("waiting for the instances' interest: %w", err)
	}
	if showWait(env.MultiNode(), p, false) {
		fmt.Fprintf(w, "interest: waited %s for the instances to be visible from %s: %s\n", ms(p.Waited), cli.ServerName(nc), p)
	}
	// micro counts a request once its handler has returned: settle each
	// instance (its handler has returned for every probe it answered)
	// before the reset.
	for _, in := range instances {
		if err := in.settle(ctx); err != nil {
			return err
		}
		in.svc.Reset()
	}
	who := plural(cfg.Workers, "instance")
	if cfg.Mode.Request {
		who = "instances running elsewhere"
	}
	fmt.Fprintf(w, "micro service %q, endpoint %q on %q in queue group %q: %s, %s, %d in flight\n",
		MicroService, MicroEndpoint, MicroSubject, micro.DefaultQueueGroup, who,
		plural(cfg.Requests, "request"), min(cfg.Concurrency, cfg.Requests))
	lc := loadConfig(cfg)
	lc.Subject = MicroSubject
	lc.Settle = func(ctx context.Context) error {
		for _, in := range instances {
			if err := in.settle(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	res, err := load(ctx, env, w, nc, cfg, lc)
	if err != nil {
		return loadError(w, res, err)
	}
	var order []string
	for _, in := range instances {
		order = append(order, in.Name)
	}
	fmt.Fprintln(w, "replies by instance:")
	writeBars(w, res, order, true, "  ", true)

	// The instances' own counts, from $SRV.STATS: every instance that
	// answers, matched to ours by micro id. With -request nobody knows how
	// many run elsewhere, so the read waits its whole timeout.
	var ids []string
	for _, in := range instances {
		ids = append(ids, in.ID())
	}
	stats, err := ReadStats(ctx, nc, ids, cli.SetupTimeout(cfg.Timeout))
	if err != nil {
		return err
	}
	since := ""
	if cfg.Mode.Request {
		// micro counts every request its endpoint handles, the readiness
		// probes of this run (and of earlier ones) too: these counts are
		// not this run's, and are not compared with its replies.
		since = " (counts since each instance started, readiness probes included)"
	}
	fmt.Fprintf(w, "$SRV.STATS.%s, answered by %s%s:\n", MicroService, plural(len(stats), "instance"), since)
	total := 0
	byID := map[string]InstanceStats{}
	for _, st := range stats {
		fmt.Fprintf(w, "  %s (id %s) num_requests %d, num_errors %d, average_processing_time %v\n",
			st.Name, st.ID, st.Endpoint.NumRequests, st.Endpoint.NumErrors, st.Endpoint.AverageProcessingTime)
		total += st.Endpoint.NumRequests
		byID[st.ID] = st
	}
	line, err := verdict(res, 1)
	fmt.Fprintln(w, line)
	if err != nil || cfg.Mode.Request {
		return err
	}
	for _, in := range instances {
		st, ok := byID[in.ID()]
		if !ok {
			return fmt.Errorf("%s (id %s) did not answer $SRV.STATS: %w", in.Name, in.ID(), ErrNotVerified)
		}
		if got := countOf(res, in.Name); got != st.Endpoint.NumRequests {
			return fmt.Errorf("%s: $SRV.STATS says %d requests, its replies %d: %w", in.Name, st.Endpoint.NumRequests, got, ErrNotVerified)
		}
	}
	if len(stats) > len(instances) {
		fmt.Fprintf(w, "%s running elsewhere also answered $SRV.STATS\n", plural(len(stats)-len(instances), "instance"))
	}
	fmt.Fprintf(w, "$SRV.STATS agrees: the instances counted %d requests, as many as each one's replies show\n", total)
	return nil
}

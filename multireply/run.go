// What the multireply program was asked to do (Config and its checks) and
// Run, the scenario top to bottom.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"reqreply/gather"
	"reqreply/internal/cli"
	"reqreply/multireply/variants"
	"reqreply/otelnats"
)

// MaxResponders is the most demo responders a run starts: 10,000.
const MaxResponders = 10_000

// Config is what the multireply program was asked to do; the zero values of
// Max and Stall mean "not set".
type Config struct {
	// Responders is how many demo responders to start (0..MaxResponders;
	// default 5).
	Responders int
	// Timeout is the gather's deadline after the request (> 0; default 1 s).
	Timeout time.Duration
	// Max stops after this many replies (0: no limit).
	Max int
	// Stall stops when no reply follows the previous within it (0: off).
	Stall time.Duration
	// Sentinel adds a responder that answers with an empty payload after
	// all the others, and makes the gather stop on it.
	Sentinel bool
	// Variant is "inbox", "shared" or "natsext" (default "shared").
	Variant string
	// Delay is the longest responder delay (0 to MaxDelay; default 200 ms).
	Delay time.Duration
	// Seed picks the responders' delays (default 1).
	Seed uint64
	// Discover runs the micro service discovery demo instead.
	Discover bool
	// Expect runs the expect demo instead: Responders micro service
	// instances, discovered, and a gather that ends at the last expected
	// answer (gather.Expect).
	Expect bool
	// Kill stops this many of the -expect instances after discovery,
	// before the request (0..Responders-1).
	Kill int
	// Mode: both halves, or only -serve or -request.
	Mode cli.Mode
	// Topology is the embedded topology when NATS_URL is unset: one
	// server, -cluster N, or the supercluster of -supercluster.
	Topology cli.Topology
	// Supercluster runs on an embedded supercluster (east and west, 2
	// nodes each, joined by gateways), responders in both clusters.
	Supercluster bool
	// MsgTrace: -msgtrace traces the gather's request (cli.MsgTrace).
	MsgTrace cli.MsgTrace
}

// Check validates cfg before anything connects; errors wrap cli.ErrUsage.
func (cfg *Config) Check() error {
	if err := cfg.Mode.Check(); err != nil {
		return err
	}
	switch {
	case cfg.Responders < 0 || cfg.Responders > MaxResponders:
		return cli.Usagef("-responders %d: want 0..%d", cfg.Responders, MaxResponders)
	case cfg.Timeout <= 0:
		return cli.Usagef("-timeout %v must be > 0", cfg.Timeout)
	case cfg.Max < 0:
		return cli.Usagef("-max %d must be ≥ 0 (0: no limit)", cfg.Max)
	case cfg.Stall < 0:
		return cli.Usagef("-stall %v must be ≥ 0 (0: off)", cfg.Stall)
	case cfg.Stall > 0 && cfg.Stall >= cfg.Timeout:
		return cli.Usagef("-stall %v must be shorter than -timeout %v", cfg.Stall, cfg.Timeout)
	case cfg.Delay < 0 || cfg.Delay > MaxDelay:
		return cli.Usagef("-delay %v must be from 0 to %v", cfg.Delay, MaxDelay)
	case cfg.Mode.Serve && !cfg.Discover && cfg.Responders == 0 && !cfg.Sentinel:
		return cli.Usagef("-serve with -responders 0 would serve nothing")
	case cfg.Discover && (cfg.Max > 0 || cfg.Stall > 0 || cfg.Sentinel):
		return cli.Usagef("-discover sets its own stop conditions (a %v stall): drop -max, -stall and -sentinel", DiscoverStall)
	case cfg.Discover && cfg.Timeout <= DiscoverStall:
		return cli.Usagef("-discover needs a -timeout longer than its %v stall, not %v", DiscoverStall, cfg.Timeout)
	case cfg.Expect && (cfg.Discover || cfg.Sentinel):
		return cli.Usagef("-expect runs micro service instances: drop -discover and -sentinel")
	case cfg.Expect && cfg.Mode.Serve && cfg.Responders == 0:
		return cli.Usagef("-expect -serve with -responders 0 would serve nothing")
	case cfg.Kill > 0 && !cfg.Expect:
		return cli.Usagef("-kill does nothing without -expect (it stops instances of -expect's service)")
	case cfg.Kill > 0 && (cfg.Mode.Request || cfg.Mode.Serve):
		return cli.Usagef("-kill needs both halves in one run: drop -serve and -request")
	case cfg.Kill < 0 || cfg.Kill > 0 && cfg.Kill >= cfg.Responders:
		return cli.Usagef("-kill %d: want 0..%d (fewer than -responders %d)", cfg.Kill, max(cfg.Responders-1, 0), cfg.Responders)
	case !slices.Contains(variants.Names, cfg.Variant):
		return cli.Usagef("-variant %q: want one of %s", cfg.Variant, strings.Join(variants.Names, ", "))
	}
	return nil
}

// options turns the flags into gather options.
func (cfg *Config) options() []gather.Option {
	opts := []gather.Option{gather.Timeout(cfg.Timeout)}
	if cfg.Max > 0 {
		opts = append(opts, gather.MaxReplies(cfg.Max))
	}
	if cfg.Stall > 0 {
		opts = append(opts, gather.Stall(cfg.Stall))
	}
	if cfg.Sentinel {
		opts = append(opts, gather.Sentinel(nil))
	}
	return opts
}

// Run is the multireply scenario: start cfg.Responders demo responders on
// DemoSubject, each on a connection of its own named after it ("multireply
// responder-1", ...; see serveDemo), spread round-robin over env's nodes;
// connect the requester ("multireply requester") on env.RequesterNode and,
// when a responder is on another server, wait until one responder on each
// other server answers a readiness probe from there (ProbeTimeout, 5 s;
// see awaitResponders); send one
// request through cfg.Variant, print each reply as it arrives with its
// arrival time, responder and (on several nodes) its node and cluster,
// then the timeline, the count and why collection stopped, and a note if
// the requester lost its server meanwhile. With -serve only the responders
// run, until ctx ends; with -request only the gather. With -discover it
// runs Discover against three micro service instances instead. Under
// -secure the responders connect as the responder user and the requester
// as the requester user, with its inbox prefix (cfg.Lockdown). Errors: a
// connection's, a denied subscription or publish (wrapping
// nats.ErrPermissionViolation), the probe wait's (nats.ErrNoResponders,
// nats.ErrTimeout), the gather's.
func Run(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	if cfg.Discover {
		return runDiscover(ctx, env, cfg, w)
	}
	if cfg.Expect {
		return runExpect(ctx, env, cfg, w)
	}

	// The responders: each on a connection of its own (see serveDemo),
	// spread round-robin over the nodes, every one subscribed to the same
	// subject, so every one gets the request. Each flushes its
	// subscription before the request goes out. They stop when Run
	// returns: once the gather is over nobody waits for their replies,
	// and the drain that follows must not wait out their delays.
	var placed []Placed
	if cfg.Mode.Serves() && (cfg.Responders > 0 || cfg.Sentinel) {
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		var err error
		if placed, err = serveDemo(rctx, env, cfg); err != nil {
			return err
		}
	}
	if cfg.Mode.Serve {
		extra := ""
		if cfg.Sentinel {
			extra = " and a sentinel"
		}
		fmt.Fprintf(w, "%d responders%s on %s at %s until interrupted\n", cfg.Responders, extra, DemoSubject, cli.Redact(env.URL))
		return cli.WaitForInterrupt(ctx)
	}

	// The requester: the chosen variant on its own connection, on another
	// node than the first responder's when there are several.
	nc, err := env.ConnectNodeAs(cli.Requester, "requester", env.RequesterNode())
	if err != nil {
		return err
	}
	v, release, err := variants.New(cfg.Variant, nc)
	if err != nil {
		return err
	}
	defer func() { _ = release() }()
	v = otelnats.Default().Variant(v) // a span and metrics per gather, when on
	writePlacement(w, env, placed, nc)

	// Before the request: the responders' interest must be visible from
	// the requester's node, or the request would miss those whose
	// interest is still on its way (a cluster, a supercluster). The
	// readiness probes the responders answer say when; they never reach
	// the gather, whose inbox is its own. Responders on the requester's
	// own server need none: their flush confirmed them there. A -request
	// run does not know its responders: it gathers from whoever is there.
	if needProbe(placed, nc) && nc.HeadersSupported() {
		if err := awaitResponders(ctx, w, nc, placed); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "request on %s via %s: deadline %v, %s\n", DemoSubject, v.Name(), cfg.Timeout, describe(cfg))
	if !nc.HeadersSupported() {
		// nats-server sends its no-responders status as a header: without
		// header support, nobody listening looks like a silent deadline.
		fmt.Fprintln(w, "note: the server does not support headers: no responders shows only as the deadline, not as an error")
	}

	// One request; replies printed as they arrive, with the node (and
	// cluster) of their responder when there are several nodes.
	// With -msgtrace the request carries the trace header, and the
	// servers' reports of where it went are printed after the timeline;
	// they come to an inbox of their own, never to the gather.
	where := whereFunc(env, cfg, placed)
	reconnects := nc.Stats().Reconnects
	traced, err := cfg.MsgTrace.Begin(env, nc)
	if err != nil {
		return err
	}
	defer traced.Stop()
	opts := cfg.options()
	if h := traced.Header(); h != nil {
		opts = append(opts, gather.Header(h))
	}
	s, err := v.Stream(ctx, DemoSubject, nil, opts...)
	if err != nil {
		return err
	}
	var at []time.Duration
	for r := range s.Replies() {
		at = append(at, r.At)
		fmt.Fprintf(w, "%9s  %-13s %s%s\n", "+"+round(r.At), r.Responder, where(r.Responder), r.Msg.Data)
	}

	// The picture: where the replies came between request and deadline.
	// A no-responders status ends it with nats.ErrNoResponders: nobody
	// subscribes to the subject, and the server said so at once.
	res, err := s.Result()
	fmt.Fprintln(w, Timeline(res, at...))
	traced.Print(ctx, w)
	// The requester lost its server during the gather (the connection's
	// events on stderr give the times): replies sent to it while it was
	// away are lost, which NATS does not guard against; the gather kept
	// its own deadline and has the replies that came.
	switch n := nc.Stats().Reconnects - reconnects; {
	case !nc.IsConnected() && !nc.IsClosed():
		fmt.Fprintf(w, "note: the requester's connection is down (reconnecting): replies sent meanwhile are lost; the gather kept its own deadline\n")
	case n > 0:
		fmt.Fprintf(w, "note: the requester's connection was lost and re-established %s during the gather (now on %s): replies sent meanwhile were lost; the gather kept its own deadline\n",
			plural(int(n), "time", "times"), cli.ServerName(nc))
	}
	return err
}

// whereFunc returns what a reply line says of its responder's place: its
// node (and cluster, on a supercluster) when env has several nodes, else
// nothing.
func whereFunc(env *cli.Env, cfg Config, placed []Placed) func(responder string) string {
	if len(env.Nodes()) < 2 || len(placed) == 0 {
		return func(string) string { return "" }
	}
	at := map[string]Placed{}
	for _, p := range placed {
		at[p.Name] = p
	}
	return func(responder string) string {
		p, ok := at[responder]
		switch {
		case !ok:
			return fmt.Sprintf("%-16s ", "")
		case cfg.Supercluster:
			return fmt.Sprintf("%-16s ", p.Node+" ("+p.Cluster+")")
		}
		return fmt.Sprintf("%-16s ", "on "+p.Node)
	}
}

// connectVariant opens a connection for role and makes the named variant on
// it; release frees the variant (the connection is env's to drain).
func connectVariant(env *cli.Env, role, variant string) (gather.Variant, func() error, error) {
	nc, err := env.ConnectNodeAs(cli.Requester, role, env.RequesterNode())
	if err != nil {
		return nil, nil, err
	}
	v, release, err := variants.New(variant, nc)
	if err != nil {
		return nil, nil, err
	}
	return otelnats.Default().Variant(v), release, nil
}

// describe says which stop conditions besides the deadline are set.
func describe(cfg Config) string {
	var parts []string
	if cfg.Max > 0 {
		parts = append(parts, fmt.Sprintf("max %d", cfg.Max))
	}
	if cfg.Stall > 0 {
		parts = append(parts, fmt.Sprintf("stall %v", cfg.Stall))
	}
	if cfg.Sentinel {
		parts = append(parts, "sentinel: an empty payload")
	}
	if len(parts) == 0 {
		return "no other stop condition"
	}
	return strings.Join(parts, ", ")
}

// runDiscover starts three micro service instances, each on its own
// connection, unless -request, and gathers their PING and INFO answers
// unless -serve.
func runDiscover(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	started := 0 // instances started here, whose interest to wait for
	if cfg.Mode.Serves() {
		var conns []*nats.Conn
		for i := range 3 {
			nc, err := env.ConnectNodeAs(cli.Responder, fmt.Sprintf("%s-%d", DiscoverService, i+1), env.ResponderNode(i))
			if err != nil {
				return err
			}
			conns = append(conns, nc)
		}
		if _, err := StartGreeters(conns); err != nil {
			return err
		}
		started = len(conns)
	}
	if cfg.Mode.Serve {
		fmt.Fprintf(w, "3 instances of %s at %s until interrupted\n", DiscoverService, cli.Redact(env.URL))
		return cli.WaitForInterrupt(ctx)
	}
	v, release, err := connectVariant(env, "discoverer", cfg.Variant)
	if err != nil {
		return err
	}
	defer func() { _ = release() }()
	if err := awaitInstances(ctx, w, env, v, DiscoverService, started); err != nil {
		return err
	}
	return Discover(ctx, v, DiscoverService, cfg.Timeout, w)
}

// awaitInstances waits, when env has several nodes, until want instances
// of service (those started here) answer a $SRV.PING gather, bounded by ProbeTimeout: their interest
// reaches the discoverer's server asynchronously (a route, a gateway).
// A micro service answers PING without counting it in its endpoint
// stats, so these gathers are the probes. It writes one line when it had
// to wait. The error is the gather's, or one wrapping nats.ErrTimeout.
func awaitInstances(ctx context.Context, w io.Writer, env *cli.Env, v gather.Variant, service string, want int) error {
	if want == 0 || len(env.Nodes()) < 2 {
		return nil
	}
	subject, err := micro.ControlSubject(micro.PingVerb, service, "")
	if err != nil {
		return err
	}
	start := time.Now()
	deadline := start.Add(ProbeTimeout)
	for tries := 1; ; tries++ {
		res, err := gather.Gather(ctx, v, subject, nil, gather.Timeout(time.Until(deadline)), gather.MaxReplies(want), gather.Stall(DiscoverStall))
		if err != nil && !errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("waiting for the %s instances' interest: %w", service, err)
		}
		if err == nil && res.Count >= want {
			if tries > 1 {
				fmt.Fprintf(w, "interest: waited %s for the %d %s instances to be visible (%d PING gathers)\n", round(time.Since(start)), want, service, tries)
			}
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("waiting for the %s instances' interest: %d of %d answered within %v: %w", service, res.Count, want, ProbeTimeout, nats.ErrTimeout)
		}
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/internal/cli"
	"reqreply/probe"
)

// This file holds what the program was asked to do (Config, its checks and
// defaults, the list of demos) and Run, which plays the demo asked for, with
// the helpers the demos share.

// Defaults and limits of the flags.
const (
	// DefaultWorkers is the number of members in the queue group: 3.
	DefaultWorkers = 3
	// DefaultRequests is the number of requests a run sends: 30.
	DefaultRequests = 30
	// DefaultConcurrency is the number of requests in flight at once: 1.
	DefaultConcurrency = 1
	// DefaultSlowDemo is how much slower worker-1 is in -demo slow when
	// -slow is not given: 10 ms.
	DefaultSlowDemo = 10 * time.Millisecond

	// MaxWorkers bounds -workers: 64 members, each a connection of its own.
	MaxWorkers = 64
	// MaxRequests bounds -requests: 1,000,000 (the requester keeps about
	// 100 bytes per request).
	MaxRequests = 1_000_000
	// MaxConcurrency bounds -concurrency: 10,000 requests in flight.
	MaxConcurrency = 10_000
)

// Demo names one of the runs the program can show.
type Demo string

// The demos, one per question a user brings to queue groups.
const (
	// DemoShare: K members share R requests; counts, spread, latency.
	DemoShare Demo = "share"
	// DemoMixed: plain subscribers and two queue groups on one subject.
	DemoMixed Demo = "mixed"
	// DemoDrain: a member drains under load; no request is lost.
	DemoDrain Demo = "drain"
	// DemoScale: a member joins under load and starts taking work.
	DemoScale Demo = "scale"
	// DemoDie: a member dies abruptly; its requests time out (-retry).
	DemoDie Demo = "die"
	// DemoGone: every member leaves; the next request fails fast.
	DemoGone Demo = "gone"
	// DemoSlow: one slow member; latency percentiles across set-ups.
	DemoSlow Demo = "slow"
	// DemoMicro: the same work as a micro service, counts from $SRV.STATS.
	DemoMicro Demo = "micro"
	// DemoLeaf: members on a hub and on a leaf node; requests from the
	// leaf stay local while they can.
	DemoLeaf Demo = "leaf"
	// DemoGeo: members in two clusters of a supercluster; requests stay in
	// their own cluster while they can.
	DemoGeo Demo = "geo"
)

// DemoInfo says what a demo shows.
type DemoInfo struct {
	Name  Demo
	Shows string
}

// Demos lists every demo with what it shows, in the order of the usage.
var Demos = []DemoInfo{
	{DemoShare, "K members share R requests: per-member counts, spread, throughput, p50/p99 (default)"},
	{DemoMixed, "2 plain subscribers get every request; each of 2 queue groups answers every request once"},
	{DemoDrain, "worker-1 drains its connection a third of the way in: nothing is lost"},
	{DemoScale, "a new member joins a third of the way in and starts taking work"},
	{DemoDie, "worker-1 dies (closes without draining) at its 2nd request: what it held times out (see -retry)"},
	{DemoGone, "every member drains; the next request fails at once with no responders"},
	{DemoSlow, "worker-1 is slower (-slow, 10ms if unset): latency with more members or fewer in flight"},
	{DemoMicro, "-workers instances of a nats.go/micro service share requests; counts read from $SRV.STATS"},
	{DemoLeaf, "members on a hub and a leaf node: the leaf's requests go to its own member, fail over to the hub's when it drains, come back"},
	{DemoGeo, "members in east and west (a supercluster): east's requests stay in east, cross the gateway when east has none, come back"},
}

// Config is what the queuegroup program was asked to do.
type Config struct {
	// Demo is the run to show; DemoShare unless -demo.
	Demo Demo
	// Workers is the number of queue group members (micro instances), each
	// on its own connection: 1..MaxWorkers, DefaultWorkers (3) unless
	// -workers. The drain and die demos need at least 2.
	Workers int
	// Requests to send: 1..MaxRequests, DefaultRequests (30) unless
	// -requests; drain and scale need at least 3.
	Requests int
	// Concurrency is the number of requests in flight at once:
	// 1..MaxConcurrency, DefaultConcurrency (1) unless -concurrency. More
	// than Requests is allowed: then every request is in flight at once.
	Concurrency int
	// Timeout is how long one request waits for its reply: > 0,
	// DefaultTimeout (1 s) unless -timeout.
	Timeout time.Duration
	// Slow makes worker-1 (instance-1) take this much longer per request:
	// ≥ 0 and < Timeout; 0 unless -slow (DefaultSlowDemo in -demo slow).
	Slow time.Duration
	// Retry re-sends a timed-out request once (-retry).
	Retry bool
	// Mode: both halves, or only -serve or -request (share and micro only).
	Mode cli.Mode
	// Topology is the embedded topology when NATS_URL is unset: -cluster
	// N, or the hub and leaf of DemoLeaf, the supercluster of DemoGeo.
	Topology cli.Topology
	// MsgTrace: -msgtrace traces the first request of each load run (each
	// phase of the leaf and geo demos) and prints where it went.
	MsgTrace cli.MsgTrace

	// afterDeath, for tests, runs in the die demo after the dying member has
	// closed its connection and before any retry is sent: there the tests
	// wait until the server has dropped its subscription.
	afterDeath func(ctx context.Context) error
}

// DefaultConfig returns the configuration of a run without flags.
func DefaultConfig() Config {
	return Config{
		Demo:        DemoShare,
		Workers:     DefaultWorkers,
		Requests:    DefaultRequests,
		Concurrency: DefaultConcurrency,
		Timeout:     DefaultTimeout,
	}
}

// Check validates cfg before anything connects. The error wraps
// cli.ErrUsage, so the program exits 2 with it.
func (cfg *Config) Check() error {
	if err := cfg.Mode.Check(); err != nil {
		return err
	}
	if !slices.ContainsFunc(Demos, func(d DemoInfo) bool { return d.Name == cfg.Demo }) {
		names := make([]string, len(Demos))
		for i, d := range Demos {
			names[i] = string(d.Name)
		}
		return cli.Usagef("-demo %q: want one of %s", cfg.Demo, strings.Join(names, ", "))
	}
	minWorkers, minRequests := 1, 1
	switch cfg.Demo {
	case DemoDrain, DemoDie:
		minWorkers = 2 // someone must be left to take the work
	}
	switch cfg.Demo {
	case DemoDrain, DemoScale:
		minRequests = 3 // the change comes a third of the way in
	}
	switch {
	case cfg.Workers < minWorkers || cfg.Workers > MaxWorkers:
		return cli.Usagef("-workers %d: want %d..%d for -demo %s", cfg.Workers, minWorkers, MaxWorkers, cfg.Demo)
	case cfg.Requests < minRequests || cfg.Requests > MaxRequests:
		return cli.Usagef("-requests %d: want %d..%d for -demo %s", cfg.Requests, minRequests, MaxRequests, cfg.Demo)
	case cfg.Concurrency < 1 || cfg.Concurrency > MaxConcurrency:
		return cli.Usagef("-concurrency %d: want 1..%d", cfg.Concurrency, MaxConcurrency)
	case cfg.Timeout <= 0:
		return cli.Usagef("-timeout %v must be > 0", cfg.Timeout)
	case cfg.Slow < 0:
		return cli.Usagef("-slow %v must be ≥ 0", cfg.Slow)
	case cfg.Slow >= cfg.Timeout:
		return cli.Usagef("-slow %v must be less than -timeout %v, or every request worker-1 takes times out", cfg.Slow, cfg.Timeout)
	case cfg.Demo == DemoSlow && cfg.Slow == 0 && DefaultSlowDemo >= cfg.Timeout:
		return cli.Usagef("-demo slow makes worker-1 %v slower: -timeout %v must be longer (or give -slow)", DefaultSlowDemo, cfg.Timeout)
	case (cfg.Mode.Serve || cfg.Mode.Request) && cfg.Demo != DemoShare && cfg.Demo != DemoMicro:
		return cli.Usagef("-demo %s starts and stops members itself; -serve and -request work with -demo share or micro", cfg.Demo)
	}
	return nil
}

// Run is the queuegroup scenario: it plays cfg.Demo on env and writes what
// it shows to w. Members and the requester each connect through env
// ("queuegroup worker-1", ..., "queuegroup requester"); Run leaves the
// connections open for env.Close to drain. With cfg.Mode.Serve it starts
// the members and serves until ctx ends; with cfg.Mode.Request it only
// sends the requests, to members running elsewhere. What each demo does and
// prints is in Demos and in the comment on its function (runShare,
// runMixed, runDrain, runScale, runDie, runGone, runSlow, runMicro,
// runLeaf, runGeo). On several nodes, a request lost in transit to a member
// that had just left is counted and reported, not an error (see
// writeInTransit).
//
// Errors: an error wrapping cli.ErrUsage for a cfg that fails Check
// (nothing connects); ErrNotVerified when a demo that expects every request
// answered exactly once sees otherwise; nats.ErrNoResponders when nobody
// serves the subject (with -request and no members running); ctx's error
// when it ends first (Ctrl-C; cli.Main makes that a clean exit); the nats.go
// error of a connect, subscribe or publish (nats.ErrNoServers,
// nats.ErrConnectionClosed when the server is gone for good, ...). A run of
// requests that ends early with an error first writes one line with its
// counts: answered, timed out, failed, not sent.
func Run(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	switch cfg.Demo {
	case DemoMixed:
		return runMixed(ctx, env, cfg, w)
	case DemoDrain:
		return runDrain(ctx, env, cfg, w, drainConnection)
	case DemoScale:
		return runScale(ctx, env, cfg, w)
	case DemoDie:
		return runDie(ctx, env, cfg, w)
	case DemoGone:
		return runGone(ctx, env, cfg, w)
	case DemoSlow:
		return runSlow(ctx, env, cfg, w)
	case DemoMicro:
		return runMicro(ctx, env, cfg, w)
	case DemoLeaf:
		return runLeaf(ctx, env, cfg, w)
	case DemoGeo:
		return runGeo(ctx, env, cfg, w)
	default:
		return runShare(ctx, env, cfg, w)
	}
}

// Lockdown is the program's -secure setup for cfg.Demo (see cli.Lockdown):
// the requester may publish only to the demo's subjects and subscribe only
// to its own inbox prefix; the members may take requests only on those
// subjects, in a queue group or not, and publish nothing but their replies,
// one per request and member (each member has its own connection, and
// allow_responses counts per connection). The demo's subjects are Subject,
// or for -demo micro MicroSubject and $SRV.> (micro's $SRV.PING, $SRV.INFO
// and $SRV.STATS, which the instances subscribe to and the requester reads
// the stats from). The readiness probes go where the requests go.
func Lockdown(cfg Config) cli.Lockdown {
	if cfg.Demo == DemoMicro {
		return cli.Lockdown{Service: []string{MicroSubject, "$SRV.>"}}
	}
	return cli.Lockdown{Service: []string{Subject}}
}

// secureDemos lists the demos that run under -secure: all but leaf and geo,
// whose servers have no users.
func secureDemos() []string {
	var out []string
	for _, d := range Demos {
		if d.Name != DemoLeaf && d.Name != DemoGeo {
			out = append(out, string(d.Name))
		}
	}
	return out
}

// workerName is the name of the i-th worker (1-based): worker-1, ...
func workerName(i int) string { return fmt.Sprintf("worker-%d", i) }

// startWorkers joins workers first..first+n-1 to Group on Subject, each on
// its own connection; worker-1 is slower by cfg.Slow. opts, if not nil,
// adds to each member's options.
func startWorkers(env *cli.Env, cfg Config, first, n int, opts func(i int, o *MemberOptions)) ([]*Member, error) {
	var members []*Member
	for i := first; i < first+n; i++ {
		o := MemberOptions{}
		if i == 1 {
			o.Delay = cfg.Slow
		}
		if opts != nil {
			opts(i, &o)
		}
		// Round-robin over the nodes: worker-1 on the first.
		m, err := joinOn(env, env.ResponderNode(i-1), Subject, Group, workerName(i), o)
		if err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	return members, nil
}

// names returns the members' names, in order.
func names(members []*Member) []string {
	out := make([]string, len(members))
	for i, m := range members {
		out[i] = m.Name
	}
	return out
}

// settleAll returns a LoadConfig.Settle that settles every member: its
// replies have reached its server (Member.Settle).
func settleAll(members ...*Member) func(ctx context.Context) error {
	return settleFrom(nil, members...)
}

// settleFrom is settleAll for a run whose requester is nc, when some members
// are plain subscribers whose own counts are read afterwards (the mixed
// demo's listeners): a plain subscriber is settled from nc
// (settlePlain), so that it has also counted every copy nc published
// before, including one still crossing a route. The plain subscribers of
// one subject are probed together; a nil nc settles each member alone.
func settleFrom(nc *nats.Conn, members ...*Member) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		var plain []*Member
		for _, m := range members {
			if nc != nil && m.Group == "" {
				plain = append(plain, m)
				continue
			}
			if err := m.Settle(ctx); err != nil {
				return err
			}
		}
		return settlePlain(ctx, nc, plain)
	}
}

// startGroup is how the drain, scale and gone demos begin: cfg.Workers
// members, a requester on its own connection (on another node than
// worker-1's when there are several), the header line, and a wait until
// every member's interest is visible from the requester's node.
func startGroup(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) ([]*Member, *nats.Conn, error) {
	members, err := startWorkers(env, cfg, 1, cfg.Workers, nil)
	if err != nil {
		return nil, nil, err
	}
	nc, err := connectRequester(env)
	if err != nil {
		return nil, nil, err
	}
	writeHeader(w, cfg, len(members))
	writePlacement(w, env, members, nc)
	if err := awaitMembers(ctx, env, w, nc, cfg, probe.AllOf(names(members)...)); err != nil {
		return nil, nil, err
	}
	return members, nc, nil
}

// loadConfig is the LoadConfig for cfg's requests on Subject.
func loadConfig(cfg Config) LoadConfig {
	return LoadConfig{
		Subject:     Subject,
		Requests:    cfg.Requests,
		Concurrency: cfg.Concurrency,
		Timeout:     cfg.Timeout,
		Retry:       cfg.Retry,
	}
}

// load is Load with -msgtrace: request number 1 carries the trace header
// (LoadConfig.Header), and where it went is printed to w once the run is
// over. Errors are Load's, or the trace's start's.
func load(ctx context.Context, env *cli.Env, w io.Writer, nc *nats.Conn, cfg Config, lc LoadConfig) (*Result, error) {
	traced, err := cfg.MsgTrace.Begin(env, nc)
	if err != nil {
		return nil, err
	}
	defer traced.Stop()
	lc.Header = traced.Header()
	res, err := Load(ctx, nc, lc)
	traced.Print(ctx, w)
	return res, err
}

// writeHeader writes the first line of a run: who serves, what is sent.
func writeHeader(w io.Writer, cfg Config, members int) {
	fmt.Fprintf(w, "queue group %q on %q: %s, %s, %d in flight, timeout %v\n",
		Group, Subject, plural(members, "member"), plural(cfg.Requests, "request"), min(cfg.Concurrency, cfg.Requests), cfg.Timeout)
	if cfg.Slow > 0 {
		fmt.Fprintf(w, "%s takes %v longer than the others per request\n", workerName(1), cfg.Slow)
	}
}

// What the tail program was asked to do, and the demo: the same load under
// two fault models, one table each with a row per pattern, a picture, and
// the targets checked against what was measured.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/hedge"
	"reqreply/internal/cli"
)

// Defaults of the demo's load: 3 members, a few
// thousand requests, 16 in flight.
const (
	DefaultMembers     = 3
	DefaultRequests    = 3000
	DefaultConcurrency = 16
	// DefaultTimeout is each request's overall deadline: 100 ms, a budget
	// a caller might have, shorter than the slow member's queue.
	DefaultTimeout = 100 * time.Millisecond
	// DefaultSlow is how much slower the slow member is: 10 ms per request.
	DefaultSlow = 10 * time.Millisecond
	// DefaultStall and DefaultStallRate: each member stalls 50 ms on 1% of
	// its requests.
	DefaultStall     = 50 * time.Millisecond
	DefaultStallRate = 0.01
	// DefaultHedge is the fixed hedge delay, and the adaptive hedge's
	// delay until it has enough samples: 2 ms, a few times a healthy
	// member's latency.
	DefaultHedge = 2 * time.Millisecond
	// DefaultAdmit is admission control's k: a member leaves the group with
	// 2 requests in progress.
	DefaultAdmit = 2
	// DefaultGap is how long a restarting member is away in the rolling
	// restart: 20 ms, a quick process restart.
	DefaultGap = 20 * time.Millisecond
)

// MaxRequests bounds -requests: 1,000,000 per row. Every request's latency
// is kept for the percentiles (about 50 MB at the bound), and a row that
// size already takes minutes; a number beyond it is a typo, and would run
// for days and hold gigabytes.
const MaxRequests = 1_000_000

// Demo names one part of the program's run.
type Demo string

// The demos: both fault models and the rolling restart, or one of them.
const (
	DemoAll     Demo = "all"
	DemoSlow    Demo = "slow"
	DemoStall   Demo = "stall"
	DemoRestart Demo = "restart"
	// DemoCharge is not part of all: a write served with and without an
	// idempotency key (charge.go).
	DemoCharge Demo = "charge"
)

// Config is what the tail program was asked to do.
type Config struct {
	// Demo: all, slow, stall, restart or charge.
	Demo Demo
	// Members in the queue group (1..64); member-1 is the slow one.
	Members int
	// Requests per row (1..MaxRequests) and Concurrency, the requests in
	// flight (1..10000).
	Requests, Concurrency int
	// Timeout is each request's overall deadline (> 0).
	Timeout time.Duration
	// Slow, Stall and StallRate are the two fault models (see Fault).
	Slow, Stall time.Duration
	StallRate   float64
	// Hedge is the fixed hedge delay (> 0).
	Hedge time.Duration
	// Admit is admission control's k (≥ 1).
	Admit int
	// Workers is how many requests a member works on at once in the stall
	// model (1..10000): 16 by default, so a stall delays only its own request;
	// 1 makes a stall hold up the member's whole queue. The slow-member
	// model always uses 1, so its requests queue.
	Workers int
	// Gap is how long each member is away in the rolling restart (≥ 0).
	Gap time.Duration
	// Seed for the stall draws and the retry jitter.
	Seed uint64
	// Mode: both halves, or only -serve or -request (see serve.go).
	Mode cli.Mode
	// Fault the -serve members have (slow or stall), and Pattern the
	// -request requester uses.
	Fault   string
	Pattern string
	// ServeAdmit turns admission control on for -serve (-admit given).
	ServeAdmit bool
}

// DefaultConfig returns the demo's defaults.
func DefaultConfig() Config {
	return Config{
		Demo: DemoAll, Members: DefaultMembers, Requests: DefaultRequests,
		Concurrency: DefaultConcurrency, Timeout: DefaultTimeout,
		Slow: DefaultSlow, Stall: DefaultStall, StallRate: DefaultStallRate,
		Hedge: DefaultHedge, Admit: DefaultAdmit, Gap: DefaultGap, Seed: 1, Workers: DefaultConcurrency,
		Fault: "slow", Pattern: "baseline",
	}
}

// Check validates cfg before anything connects; the error wraps
// cli.ErrUsage.
func (cfg *Config) Check() error {
	if err := cfg.Mode.Check(); err != nil {
		return err
	}
	switch {
	case !slices.Contains([]Demo{DemoAll, DemoSlow, DemoStall, DemoRestart, DemoCharge}, cfg.Demo):
		return cli.Usagef("-demo %q: want all, slow, stall, restart or charge", cfg.Demo)
	case cfg.Members < 1 || cfg.Members > 64:
		return cli.Usagef("-members %d must be in 1..64", cfg.Members)
	case cfg.Requests < 1 || cfg.Requests > MaxRequests:
		return cli.Usagef("-requests %d must be in 1..%d", cfg.Requests, MaxRequests)
	case cfg.Concurrency < 1 || cfg.Concurrency > 10000:
		return cli.Usagef("-concurrency %d must be in 1..10000", cfg.Concurrency)
	case cfg.Timeout <= 0:
		return cli.Usagef("-timeout %v must be > 0", cfg.Timeout)
	case cfg.Slow < 0 || cfg.Stall < 0 || cfg.Gap < 0:
		return cli.Usagef("-slow, -stall and -gap must be ≥ 0")
	case !(cfg.StallRate >= 0 && cfg.StallRate <= 1): // also NaN, which flag parses
		return cli.Usagef("-stall-rate %v must be in [0, 1]", cfg.StallRate)
	case cfg.Hedge <= 0:
		return cli.Usagef("-hedge %v must be > 0", cfg.Hedge)
	case cfg.Admit < 1:
		return cli.Usagef("-admit %d must be ≥ 1", cfg.Admit)
	case cfg.Workers < 1 || cfg.Workers > 10000:
		return cli.Usagef("-workers %d must be in 1..10000", cfg.Workers)
	}
	if _, ok := faults(*cfg)[cfg.Fault]; !ok {
		return cli.Usagef("-fault %q: want slow or stall", cfg.Fault)
	}
	if _, ok := patternByName(*cfg, cfg.Pattern); !ok {
		return cli.Usagef("-pattern %q: want one of %v", cfg.Pattern, patternNames(*cfg))
	}
	return nil
}

// Pattern is one row of a table: the requester's Policy and what the
// members do.
type Pattern struct {
	// Name is the row's label; Key the -pattern name.
	Name, Key string
	// Policy of the requester.
	Policy hedge.Policy
	// Propagate and Admit (k, 0: off) for the members.
	Propagate bool
	Admit     int
}

// patterns are the rows of the fault-model tables, baseline first.
func patterns(cfg Config) []Pattern {
	fixed := hedge.Hedge{Delay: cfg.Hedge}
	adaptive := hedge.Hedge{Delay: cfg.Hedge, Adaptive: true}
	// Admission control empties the group now and then; a retry on no
	// responders finds the member that has rejoined.
	// Each row draws its own jitter sequence from the seed.
	noResponders := func() *hedge.Backoff {
		return &hedge.Backoff{Base: 100 * time.Microsecond, Max: 5 * time.Millisecond, Rand: hedge.SeededRand(cfg.Seed)}
	}
	return []Pattern{
		{Name: "baseline", Key: "baseline"},
		{Name: "hedged, fixed " + cfg.Hedge.String(), Key: "hedged", Policy: hedge.Policy{Hedge: fixed}},
		{Name: "hedged, adaptive p95", Key: "adaptive", Policy: hedge.Policy{Hedge: adaptive}},
		{Name: "deadline propagation", Key: "deadline", Policy: hedge.Policy{Propagate: true}, Propagate: true},
		{Name: fmt.Sprintf("admission k=%d + retry", cfg.Admit), Key: "admission", Policy: hedge.Policy{Retry: noResponders()}, Admit: cfg.Admit},
		{Name: "adaptive + deadline", Key: "adaptive+deadline", Policy: hedge.Policy{Hedge: adaptive, Propagate: true}, Propagate: true},
		{Name: "admission + adaptive", Key: "admission+adaptive", Policy: hedge.Policy{Hedge: adaptive, Retry: noResponders()}, Admit: cfg.Admit},
		{Name: "admission + adaptive + deadline", Key: "all", Policy: hedge.Policy{Hedge: adaptive, Retry: noResponders(), Propagate: true}, Propagate: true, Admit: cfg.Admit},
	}
}

func patternByName(cfg Config, key string) (Pattern, bool) {
	for _, p := range patterns(cfg) {
		if p.Key == key {
			return p, true
		}
	}
	return Pattern{}, false
}

func patternNames(cfg Config) []string {
	var names []string
	for _, p := range patterns(cfg) {
		names = append(names, p.Key)
	}
	return names
}

// faults are the two fault models: for each member index (1-based), its
// fault and how many requests it works on at once. "slow": member-1 takes
// cfg.Slow longer per request, and every member works one request at a
// time, so member-1's requests queue; "stall": every member stalls
// cfg.Stall on cfg.StallRate of its requests, each with its own seed, with
// cfg.Workers requests at once.
func faults(cfg Config) map[string]func(i int) MemberOptions {
	return map[string]func(i int) MemberOptions{
		"slow": func(i int) MemberOptions {
			if i == 1 {
				return MemberOptions{Fault: Fault{Slow: cfg.Slow}, Workers: 1}
			}
			return MemberOptions{Workers: 1}
		},
		"stall": func(i int) MemberOptions {
			return MemberOptions{Fault: Fault{Stall: cfg.Stall, StallRate: cfg.StallRate, Seed: cfg.Seed + uint64(i)}, Workers: cfg.Workers}
		},
	}
}

// memberName is the name of member i (1-based).
func memberName(i int) string { return fmt.Sprintf("member-%d", i) }

// Row is one measured row of a table.
type Row struct {
	Pattern Pattern
	Load    *LoadResult
	Client  hedge.ClientStats
	Members []MemberStats
}

// Extra is the extra copies sent (hedges and retries) as a percentage of
// the requests.
func (r *Row) Extra() float64 {
	if r.Load.Requests == 0 {
		return 0
	}
	return 100 * float64(r.Client.Hedges+r.Client.Retries) / float64(r.Load.Requests)
}

// Wasted is the work done, or still queued to be done, whose reply no
// caller took: requests the members executed, plus their Backlog when the
// load ended, minus the replies callers took.
func (r *Row) Wasted() int64 {
	var executed int64
	for _, m := range r.Members {
		executed += m.Executed + m.Backlog
	}
	return executed - int64(r.Load.Answered+r.Load.Wrong)
}

// WastedBy is Wasted for the one member named name.
func (r *Row) WastedBy(name string) int64 {
	for _, m := range r.Members {
		if m.Name == name {
			return m.Executed + m.Backlog - int64(len(r.Load.ByMember[name]))
		}
	}
	return 0
}

// Churn is the subscription changes admission control made: rejoins
// (SUBs after the first) and leaves (UNSUBs).
func (r *Row) Churn() int64 {
	var n int64
	for _, m := range r.Members {
		n += m.Joins - 1 + m.Leaves
	}
	return n
}

// Verified reports whether every caller got at most one reply and it was
// its own, and every reply is accounted for: each request has exactly one
// outcome, no reply answers another request, and every reply a member sent
// was either taken by its caller or dropped and counted by the client (so
// none went to a wrong caller or went missing).
func (r *Row) Verified() bool {
	var failed, backlog int64
	for _, m := range r.Members {
		failed += m.Failed
		backlog += m.Backlog
	}
	outcomes := r.Load.Answered + r.Load.Wrong + r.Load.TimedOut + r.Load.NoResponders + r.Load.Failed
	return r.Load.Wrong == 0 && r.Client.Strays == 0 && outcomes == r.Load.Requests &&
		r.Client.Dropped+failed+backlog == r.Wasted()
}

// measure runs one row: fresh members with the fault model and the
// pattern's member side, spread round-robin over the nodes, a fresh Client
// with its Policy on nc, a wait until every member's interest is visible
// from nc's node (Client.Await; a line on w when there was one), the load,
// then settles members and client so every count is final, and stops the
// members. With place, it first writes which node each connection is on
// (when there are several).
func measure(ctx context.Context, env *cli.Env, nc *nats.Conn, cfg Config, fault func(int) MemberOptions, p Pattern, progress func(int), w io.Writer, place bool) (*Row, error) {
	members := make([]*Member, 0, cfg.Members)
	stopAll := func() error { return StopAll(ctx, members) }
	for i := 1; i <= cfg.Members; i++ {
		opts := fault(i)
		opts.Propagate, opts.Admit, opts.Node = p.Propagate, p.Admit, memberNode(env, i)
		m, err := startMember(env, memberName(i), opts)
		if err != nil {
			return nil, errors.Join(err, stopAll())
		}
		members = append(members, m)
	}
	c, err := newClient(nc, p.Policy)
	if err != nil {
		return nil, errors.Join(err, stopAll())
	}
	defer c.Close()
	if place {
		writePlacement(w, env, members, nc)
	}
	// Nothing is counted before every member answers a probe from the
	// requester's node: on a cluster a member's interest reaches the other
	// nodes asynchronously, and a request sent before would get a spurious
	// no responders, or never reach that member.
	if _, err := awaitClient(ctx, c, waitLog(env, w), Subject, allOf(members), cfg.Timeout); err != nil {
		return nil, errors.Join(fmt.Errorf("%s: %w", p.Name, err), stopAll())
	}
	res, err := LoadWatched(ctx, c, Subject, LoadConfig{Requests: cfg.Requests, Concurrency: cfg.Concurrency, Timeout: cfg.Timeout, Progress: progress})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%s: %w", p.Name, err), stopAll())
	}
	// The last copies leave the client; every member gives up what it
	// still has (every caller has returned) and its replies reach its
	// server; the client waits until its inbox has filed as many replies as
	// the members sent, which on a cluster may still be crossing a route
	// (if one never comes, the row is not verified); and a last settle
	// counts anything more.
	sctx, cancel := context.WithTimeout(ctx, cli.DrainTimeout)
	defer cancel()
	if err := c.Settle(sctx); err != nil {
		return nil, errors.Join(err, stopAll())
	}
	var sent int64
	for _, m := range members {
		if err := m.Abandon(sctx); err != nil {
			return nil, errors.Join(err, stopAll())
		}
		st := m.Stats()
		sent += st.Executed - st.Failed
	}
	wctx, wcancel := context.WithTimeout(ctx, cli.DrainTimeout)
	err = c.WaitReplies(wctx, sent)
	wcancel()
	if ctx.Err() != nil {
		return nil, errors.Join(err, stopAll())
	}
	// A reply that never came is not an error here: the row says NO.
	fctx, fcancel := context.WithTimeout(ctx, cli.DrainTimeout)
	defer fcancel()
	if err := c.Settle(fctx); err != nil {
		return nil, errors.Join(err, stopAll())
	}
	row := &Row{Pattern: p, Load: res, Client: c.Stats()}
	for _, m := range members {
		row.Members = append(row.Members, m.Stats())
	}
	if res.FirstError != nil && ctx.Err() == nil {
		return nil, errors.Join(fmt.Errorf("%s: %w", p.Name, res.FirstError), stopAll())
	}
	return row, stopAll()
}

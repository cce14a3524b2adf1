// Command tail measures request-reply patterns against tail latency side by
// side, on the same load: hedged requests (fixed delay and adaptive p95),
// deadline propagation, member admission control by interest, and their
// combinations, under two fault models (one member consistently slower;
// every member stalling now and then), then retries with exponential backoff
// and jitter in a rolling restart. Each table row says p50, p99, p99.9,
// extra requests, wasted work, timeouts and whether every caller got exactly
// its own reply.
//
//	go run ./tail [-demo all|slow|stall|restart|charge] [-requests 3000]
//	    [-concurrency 16] [-members 3] [-timeout 100ms] [-hedge 2ms]
//	    [-admit 2] [-slow 10ms] [-stall 50ms] [-stall-rate 0.01] [-workers 16]
//	    [-gap 20ms]
//	    [-seed 1] [-serve [-fault slow|stall] | -request [-pattern baseline|...]]
//	    [-cluster N | -secure]
//
// -cluster N runs it on an embedded cluster of N nodes: the members are
// spread round-robin over the nodes, the requester sits on another node
// than member-1's, and no request is counted before every member answers a
// readiness probe from the requester's node. -secure runs it locked down:
// an embedded server where the requester may only publish to tail.work and
// read its own inbox prefix, and the members may only take those requests
// and reply (see Lockdown and security/locked-down.conf).
package main

import (
	"context"
	"flag"
	"io"
	"os"
	"slices"
	"strings"

	"reqreply/internal/cli"
)

func main() {
	cfg := DefaultConfig()
	fs, check := flags(&cfg)
	os.Exit(cli.Main(fs, os.Args[1:], check, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, cfg, os.Stdout, progressWriter())
	}, cli.Secure(Lockdown)))
}

// flags returns the program's flag set, which parses into cfg, and the check
// cli.Main runs after parsing.
func flags(cfg *Config) (*flag.FlagSet, func() error) {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	demo := fs.String("demo", string(DemoAll), "what to run: all, slow (one slow member), stall (transient stalls), restart (rolling restart), or charge (a write with and without an idempotency key; not part of all)")
	fs.IntVar(&cfg.Members, "members", DefaultMembers, "members in the queue group")
	fs.IntVar(&cfg.Requests, "requests", DefaultRequests, "requests per table row")
	fs.IntVar(&cfg.Concurrency, "concurrency", DefaultConcurrency, "requests in flight")
	fs.DurationVar(&cfg.Timeout, "timeout", DefaultTimeout, "each request's overall deadline")
	fs.DurationVar(&cfg.Hedge, "hedge", DefaultHedge, "fixed hedge delay, and the adaptive hedge's until it has samples (hedging: idempotent handlers only)")
	fs.IntVar(&cfg.Admit, "admit", DefaultAdmit, "admission control: a member leaves the group with this many requests in progress")
	fs.DurationVar(&cfg.Slow, "slow", DefaultSlow, "slow-member model: how much longer member-1 takes per request")
	fs.DurationVar(&cfg.Stall, "stall", DefaultStall, "stall model: how long a stall lasts")
	fs.Float64Var(&cfg.StallRate, "stall-rate", DefaultStallRate, "stall model: the fraction of its requests on which a member stalls")
	fs.IntVar(&cfg.Workers, "workers", DefaultConcurrency, "stall model: requests a member works on at once (1: a stall holds up its whole queue)")
	fs.DurationVar(&cfg.Gap, "gap", DefaultGap, "rolling restart: how long each member is away")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed for the stalls and the retry jitter")
	fs.StringVar(&cfg.Fault, "fault", "slow", "with -serve: the members' fault, slow or stall")
	fs.StringVar(&cfg.Pattern, "pattern", "baseline", "with -request: the requester's pattern, one of "+strings.Join(patternNames(*cfg), ", ")+" (all: admission + adaptive + deadline, the three combined)")
	cfg.Mode.AddFlags(fs)
	cli.SetUsage(fs, "tail [flags]",
		`Tail latency, measured side by side: the same load (3 members, 3000 requests, 16 in
flight, 100 ms deadline) under one slow member and under transient stalls, with a row
per pattern: baseline, hedged requests (fixed delay, adaptive p95), deadline
propagation, admission control by interest, and combinations. Then a rolling restart
with and without retries. Hedging and retrying a timeout are only for idempotent
handlers: both copies may run. -serve runs only the members (-fault) and -request
only the requester (-pattern), against NATS_URL. Progress goes to stderr when it
is a terminal.`)
	check := func() error {
		if fs.NArg() > 0 {
			return cli.Usagef("unexpected argument %q: tail takes flags only", fs.Arg(0))
		}
		cfg.Demo = Demo(*demo)
		set := cli.SetFlags(fs)
		requester := []string{"requests", "concurrency", "timeout", "hedge", "pattern"}
		responder := []string{"members", "slow", "stall", "stall-rate", "admit", "seed", "fault", "workers"}
		switch {
		case cfg.Mode.Serve:
			cfg.ServeAdmit = set["admit"]
			if err := cli.Refuse(set, "with -serve, which runs only the members", append(requester, "demo", "gap")...); err != nil {
				return err
			}
			// Each fault model refuses the other's flags.
			switch cfg.Fault {
			case "slow":
				if err := cli.Refuse(set, "with -fault slow", "stall", "stall-rate", "workers", "seed"); err != nil {
					return err
				}
			case "stall":
				if err := cli.Refuse(set, "with -fault stall", "slow"); err != nil {
					return err
				}
			}
		case cfg.Mode.Request:
			// -seed stays: it seeds the requester's retry jitter too.
			if err := cli.Refuse(set, "with -request, which runs only the requester", append(slices.DeleteFunc(slices.Clone(responder), func(f string) bool { return f == "seed" }), "demo", "gap")...); err != nil {
				return err
			}
		default:
			if err := cli.Refuse(set, "without -serve or -request (the demo runs every fault and pattern)", "fault", "pattern"); err != nil {
				return err
			}
		}
		// Each demo refuses the flags of the others.
		switch Demo(*demo) {
		case DemoSlow:
			if err := cli.Refuse(set, "with -demo slow", "stall", "stall-rate", "workers", "gap"); err != nil {
				return err
			}
		case DemoStall:
			if err := cli.Refuse(set, "with -demo stall", "slow", "gap"); err != nil {
				return err
			}
		case DemoRestart:
			if err := cli.Refuse(set, "with -demo restart", "requests", "hedge", "admit", "slow", "stall", "stall-rate", "workers"); err != nil {
				return err
			}
		case DemoCharge:
			// -secure's lockdown allows tail.work only, not tail.charge and
			// the bucket's JetStream API.
			if err := cli.Refuse(set, "with -demo charge", "admit", "slow", "stall", "stall-rate", "workers", "gap", "secure"); err != nil {
				return err
			}
		}
		return cfg.Check()
	}
	return fs, check
}

// progressWriter returns stderr when it is a terminal, for the progress
// line, else nil: stderr piped or redirected to a file stays clean. It
// takes a character device for a terminal, which needs nothing beyond the
// standard library (golang.org/x/term is not among the project's
// dependencies); /dev/null is one too, where the line does no harm.
func progressWriter() io.Writer {
	fi, err := os.Stderr.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return os.Stderr
}

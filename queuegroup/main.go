// Command queuegroup shows how NATS shares requests among the members of a
// queue group: every member subscribes to the same subject in the same
// group, and the server hands each request to one of them, picked at random.
// K workers, each on its own connection, answer R requests with their name;
// the requester keeps C in flight, verifies that every request got exactly
// one reply, and prints how many each worker handled. Demos show the other
// questions: plain subscribers and two groups on one subject, draining or
// adding a member under load, a member that dies, all members gone, a slow
// member, the same work as a nats.go/micro service, and where requests go
// from a leaf node (-demo leaf) and across the gateways of a supercluster
// (-demo geo). -cluster N runs any other demo on an embedded cluster of N
// nodes, the members spread over them and the requester on another node
// than worker-1's; before the first request, and after each change of the
// group, the requester waits until the members' interest is visible from
// its node (readiness probes, see topology.go).
//
// -secure runs any demo on one server locked down: an embedded server
// where the requester may only publish to the demo's subjects and read its
// own inbox, and the members may only take those requests and reply (see
// Lockdown and security/locked-down.conf). The leaf and geo demos start
// servers without users, so they refuse -secure, as -cluster does.
//
// -msgtrace sends the first request of each run (of each phase, in the leaf
// and geo demos) with nats-server's message tracing and prints where it
// went: which member, on which server, over which crossing.
//
//	go run ./queuegroup [-demo share|mixed|drain|scale|die|gone|slow|micro|leaf|geo]
//	    [-workers 3] [-requests 30] [-concurrency 1] [-timeout 1s]
//	    [-slow 0] [-retry] [-cluster 1] [-serve | -request | -secure] [-context NAME]
//	    [-msgtrace]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"reqreply/internal/cli"
)

func main() {
	cfg := DefaultConfig()
	fs, check := flags(&cfg)
	os.Exit(cli.Main(fs, os.Args[1:], check, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, cfg, os.Stdout)
	}, secure(&cfg)))
}

// secure is the program's -secure option: the Lockdown of the demo cfg
// asks for, made once the flags are parsed.
func secure(cfg *Config) cli.Option {
	return cli.SecureWith(func() cli.Lockdown { return Lockdown(*cfg) })
}

// flags returns the program's flag set, which parses into cfg, and the check
// cli.Main runs after parsing: no arguments, no flag that the chosen half
// ignores (-serve sends no request: no -requests, -concurrency, -timeout,
// -retry; -request starts no member: no -workers, -slow), then cfg.Check.
func flags(cfg *Config) (*flag.FlagSet, func() error) {
	fs := flag.NewFlagSet("queuegroup", flag.ContinueOnError)
	demo := fs.String("demo", string(DemoShare), "the run to show: share, mixed, drain, scale, die, gone, slow, micro, leaf or geo")
	fs.IntVar(&cfg.Workers, "workers", DefaultWorkers, "queue group members (micro instances), each on its own connection")
	fs.IntVar(&cfg.Requests, "requests", DefaultRequests, "requests to send")
	fs.IntVar(&cfg.Concurrency, "concurrency", DefaultConcurrency, "requests in flight at once (more than -requests means all at once)")
	fs.DurationVar(&cfg.Timeout, "timeout", DefaultTimeout, "how long each request waits for its reply")
	fs.DurationVar(&cfg.Slow, "slow", 0, "make worker-1 this much slower per request (-demo slow: 10ms if unset)")
	fs.BoolVar(&cfg.Retry, "retry", false, "re-send a timed-out request once (needs an idempotent handler)")
	cfg.Mode.AddFlags(fs)
	cfg.Topology.AddFlags(fs)
	cfg.MsgTrace.AddFlags(fs)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintln(out, "usage: queuegroup [flags]")
		fmt.Fprintln(out, "\nK workers in one queue group share R requests; each request gets exactly one reply.")
		fmt.Fprintln(out, "\ndemos (-demo):")
		for _, d := range Demos {
			fmt.Fprintf(out, "  %-6s %s\n", d.Name, d.Shows)
		}
		fmt.Fprintln(out, "\n-serve and -request split the share and micro demos into halves, against NATS_URL.")
		fmt.Fprintln(out, "-secure runs a demo (not leaf or geo) on an embedded server with a user per part, each allowed only its part.")
		fmt.Fprintln(out, "\nflags:")
		fs.PrintDefaults()
	}
	check := func() error {
		if fs.NArg() > 0 {
			return cli.Usagef("unexpected argument %q: queuegroup takes flags only", fs.Arg(0))
		}
		cfg.Demo = Demo(*demo)
		set := cli.SetFlags(fs)
		if cfg.Mode.Serve {
			if err := cli.Refuse(set, "with -serve, which runs only the members", "requests", "concurrency", "timeout", "retry"); err != nil {
				return err
			}
		}
		if cfg.Mode.Request {
			if err := cli.Refuse(set, "with -request, which runs only the requester", "workers", "slow"); err != nil {
				return err
			}
		}
		if err := cfg.MsgTrace.Check(cfg.Mode, set); err != nil {
			return err
		}
		if cfg.MsgTrace.On && cfg.Demo == DemoSlow {
			return cli.Usagef("-msgtrace traces every demo but slow, whose rows compare latencies")
		}
		// The leaf and geo demos bring their own topology.
		switch cfg.Demo {
		case DemoLeaf, DemoGeo:
			if err := cli.Refuse(set, "with -demo "+string(cfg.Demo)+", which starts its own servers and members", "cluster", "workers", "slow"); err != nil {
				return err
			}
			if set["secure"] {
				return cli.Usagef("-demo %s starts its own servers, which have no users: -secure runs the demos on one server (%s)", cfg.Demo, strings.Join(secureDemos(), ", "))
			}
			cfg.Topology.Kind = cli.Leaf
			if cfg.Demo == DemoGeo {
				cfg.Topology.Kind = cli.Supercluster
			}
		}
		return cfg.Check()
	}
	return fs, check
}

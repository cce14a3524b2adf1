// Command multireply shows scatter-gather on NATS: one request, many
// replies. Demo responders on gather.demo each answer after their own delay;
// the requester publishes one request with an inbox as its reply subject and
// collects replies until a deadline, a count, a stall or a sentinel, then
// draws where they arrived.
//
//	go run ./multireply [-responders 5] [-timeout 1s] [-max N] [-stall D]
//	                    [-sentinel] [-variant inbox|shared|natsext]
//	                    [-delay 200ms] [-seed 1] [-discover] [-expect [-kill N]]
//	                    [-serve | -request]
//	                    [-cluster N | -supercluster | -secure] [-msgtrace]
//
// -cluster N runs it on an embedded cluster of N nodes, the responders
// spread over them and the requester on another node than the first
// responder's; -supercluster on two clusters, east and west, joined by
// gateways, each reply printed with its responder's cluster. -secure runs
// it locked down: an embedded server where the requester may only publish
// to gather.demo (and the micro control subjects) and read its own inbox
// prefix, and each responder may only take those requests and reply (see
// security/locked-down.conf). -msgtrace sends the request with nats-server's
// message tracing and prints where it went.
package main

import (
	"context"
	"flag"
	"os"
	"time"

	"reqreply/gather"
	"reqreply/internal/cli"
)

func main() {
	var cfg Config
	fs, check := flags(&cfg)
	os.Exit(cli.Main(fs, os.Args[1:], check, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, cfg, os.Stdout)
	}, cli.SecureWith(cfg.Lockdown)))
}

// flags returns the program's flag set, which parses into cfg, and the check
// cli.Main runs after parsing: no arguments, no flag that the chosen half
// or demo ignores (-serve runs no gather: no -max, -stall, -variant,
// -timeout; -request and -discover start no demo responders: no
// -responders, -delay, -seed), then cfg.Check.
func flags(cfg *Config) (*flag.FlagSet, func() error) {
	fs := flag.NewFlagSet("multireply", flag.ContinueOnError)
	fs.IntVar(&cfg.Responders, "responders", 5, "how many responders answer each request")
	fs.DurationVar(&cfg.Timeout, "timeout", gather.DefaultTimeout, "deadline: how long after the request collection stops")
	fs.IntVar(&cfg.Max, "max", 0, "stop right after this many replies (0: no limit)")
	fs.DurationVar(&cfg.Stall, "stall", 0, "after the first reply, stop when no other arrives within this gap (0: off)")
	fs.BoolVar(&cfg.Sentinel, "sentinel", false, "one more responder answers with an empty payload after all the others, which ends collection")
	fs.StringVar(&cfg.Variant, "variant", "shared", "how replies are gathered: inbox, shared or natsext")
	fs.DurationVar(&cfg.Delay, "delay", 200*time.Millisecond, "longest responder delay; each draws its own from [0, delay]")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed for the responders' delays")
	fs.BoolVar(&cfg.Discover, "discover", false, "gather $SRV.PING and $SRV.INFO from three micro service instances instead")
	fs.BoolVar(&cfg.Expect, "expect", false, "run -responders micro service instances instead, discover them, and end the gather at the last expected answer")
	fs.IntVar(&cfg.Kill, "kill", 0, "with -expect: stop this many instances after discovery, before the request")
	cfg.Mode.AddFlags(fs)
	cfg.Topology.AddFlags(fs)
	cfg.MsgTrace.AddFlags(fs)
	fs.BoolVar(&cfg.Supercluster, "supercluster", false, "run on an embedded supercluster: east and west, 2 nodes each, joined by gateways; responders in both (NATS_URL unset)")
	cli.SetUsage(fs, "multireply [flags]",
		`Scatter-gather: responders on gather.demo each answer one request after their own
delay; the requester collects replies until the first stop condition (the -timeout
deadline, -max replies, a -stall gap after the last reply, or the -sentinel empty
payload) and draws where they came. -variant picks how: shared (one wildcard inbox
per connection, the default), inbox (an inbox per request, the teaching version) or
natsext (orbit.go's RequestMany). -discover gathers micro service PING/INFO answers; -expect runs
-responders micro service instances and ends the gather at the last expected answer.
-serve and -request run the halves apart, against NATS_URL. -cluster N and
-supercluster spread the responders over embedded nodes; -secure runs locked down.`)
	check := func() error {
		if fs.NArg() > 0 {
			return cli.Usagef("unexpected arguments %q", fs.Args())
		}
		set := cli.SetFlags(fs)
		if cfg.Mode.Serve {
			if err := cli.Refuse(set, "with -serve, which runs only the responders", "max", "stall", "variant", "timeout"); err != nil {
				return err
			}
		}
		if cfg.Mode.Request {
			if err := cli.Refuse(set, "with -request, which runs only the requester", "responders", "delay", "seed"); err != nil {
				return err
			}
		}
		if cfg.Supercluster {
			if err := cli.Refuse(set, "with -supercluster, which starts its own servers", "cluster"); err != nil {
				return err
			}
			// cli.Exec then refuses -secure, -context and NATS_URL, as it
			// does for -cluster: the embedded servers have no users.
			cfg.Topology.Kind = cli.Supercluster
		}
		if cfg.Discover {
			if err := cli.Refuse(set, "with -discover, whose three micro service instances answer at once", "responders", "delay", "seed", "msgtrace"); err != nil {
				return err
			}
		}
		if cfg.Expect {
			if err := cli.Refuse(set, "with -expect, whose gather is not traced", "msgtrace"); err != nil {
				return err
			}
		}
		if err := cfg.MsgTrace.Check(cfg.Mode, set); err != nil {
			return err
		}
		return cfg.Check()
	}
	return fs, check
}

// Command singlereply shows the simplest request-reply on NATS: one request,
// one reply. A greeter subscribes to greet.* and answers "hello, <name>";
// the requester asks for greet.joe, greet.sue and greet.bob (or the names
// given as arguments) and prints each reply.
//
//	go run ./singlereply [-timeout 500ms] [-serve | -request | -secure | -cluster N] [-context NAME] [name ...]
//
// -secure runs it locked down: an embedded server where the requester may
// only publish to greet.* and read its own inbox, and the greeter may only
// take those requests and reply (see security/locked-down.conf).
//
// -cluster N runs it on an embedded cluster of N nodes (1..5); from 2 on, the greeter
// on node-1 and the requester on node-2; before its first request the
// requester waits, with readiness probes, until the greeter's interest is
// visible from its node (see topology.go). NATS_URL listing several servers
// places them the same way.
package main

import (
	"context"
	"flag"
	"os"

	"reqreply/internal/cli"
)

func main() {
	var cfg Config
	fs, check := flags(&cfg)
	os.Exit(cli.Main(fs, os.Args[1:], check, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, cfg, os.Stdout)
	}, cli.Secure(Lockdown)))
}

// flags returns the program's flag set, which parses into cfg, and the check
// cli.Main runs after parsing: the names are the arguments (DefaultNames if
// none), a -serve run takes no names and no -timeout (it sends no request),
// then cfg.Check. cli.Main itself refuses a flag given after a name.
func flags(cfg *Config) (*flag.FlagSet, func() error) {
	fs := flag.NewFlagSet("singlereply", flag.ContinueOnError)
	fs.DurationVar(&cfg.Timeout, "timeout", DefaultTimeout, "how long each request waits for its reply")
	cfg.Mode.AddFlags(fs)
	cli.SetUsage(fs, "singlereply [flags] [name ...]",
		`One request, one reply: a greeter on greet.* answers "hello, <name>"; the requester
asks for each name (joe, sue and bob unless given) and prints each reply. -serve and
-request run the halves apart, against NATS_URL. Flags go before the names.`)
	check := func() error {
		cfg.Names = fs.Args()
		if cfg.Mode.Serve {
			if len(cfg.Names) > 0 {
				return cli.Usagef("-serve answers any name; names go to a -request run")
			}
			if err := cli.Refuse(cli.SetFlags(fs), "with -serve, which sends no request", "timeout"); err != nil {
				return err
			}
		}
		if len(cfg.Names) == 0 {
			cfg.Names = DefaultNames
		}
		return cfg.Check()
	}
	return fs, check
}

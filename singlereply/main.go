// Command singlereply shows the simplest request-reply on NATS: one request,
// one reply. A greeter subscribes to greet.* and answers "hello, <name>";
// the requester asks for greet.joe, greet.sue and greet.bob (or the names
// given as arguments) and prints each reply.
//
//	go run ./singlereply [-timeout 500ms] [-serve | -request] [name ...]
package main

import (
	"context"
	"flag"
	"os"

	"reqreply/internal/cli"
)

func main() {
	cfg := Config{}
	fs := flag.NewFlagSet("singlereply", flag.ContinueOnError)
	fs.DurationVar(&cfg.Timeout, "timeout", DefaultTimeout, "how long each request waits for its reply")
	cfg.Mode.AddFlags(fs)
	cli.SetUsage(fs, "singlereply [flags] [name ...]",
		`One request, one reply: a greeter on greet.* answers "hello, <name>"; the requester
asks for each name (joe, sue and bob unless given) and prints each reply. -serve and
-request run the halves apart, against NATS_URL.`)
	os.Exit(cli.Main(fs, os.Args[1:], func() error {
		cfg.Names = fs.Args()
		if cfg.Mode.Serve && len(cfg.Names) > 0 {
			return cli.Usagef("-serve answers any name; names go to a -request run")
		}
		if len(cfg.Names) == 0 {
			cfg.Names = DefaultNames
		}
		return cfg.Check()
	}, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, cfg, os.Stdout)
	}))
}

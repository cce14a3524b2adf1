// The command line: singlereply's flags and the check of what they ask.

package main

import (
	"flag"

	"reqreply/internal/cli"
)

// flags returns the program's flag set, which parses into cfg, and the check
// cli.Main runs after parsing: the names are the arguments (DefaultNames if
// none), a -serve run takes no names and no -timeout (it sends no request),
// then cfg.Check. cli.Main itself refuses a flag given after a name.
func flags(cfg *Config) (*flag.FlagSet, func() error) {
	fs := flag.NewFlagSet("singlereply", flag.ContinueOnError)
	fs.DurationVar(&cfg.Timeout, "timeout", DefaultTimeout, "how long each request waits for its reply")
	cfg.Mode.AddFlags(fs)
	cfg.MsgTrace.AddFlags(fs)
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
		if err := cfg.MsgTrace.Check(cfg.Mode, cli.SetFlags(fs)); err != nil {
			return err
		}
		if len(cfg.Names) == 0 {
			cfg.Names = DefaultNames
		}
		return cfg.Check()
	}
	return fs, check
}

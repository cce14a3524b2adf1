// The command line: noresponders' flags and the check of what they ask.

package main

import (
	"flag"

	"reqreply/internal/cli"
)

// flags returns the program's flag set, which parses into cfg, and the check
// cli.Main runs after parsing: no arguments besides flags, no -timeout with
// -serve (it sends no request), then cfg.Check.
func flags(cfg *Config) (*flag.FlagSet, func() error) {
	fs := flag.NewFlagSet("noresponders", flag.ContinueOnError)
	fs.DurationVar(&cfg.Timeout, "timeout", DefaultTimeout, "how long a request waits for its reply (a request nobody subscribes to fails at once)")
	fs.BoolVar(&cfg.Silent, "silent", false, "also request "+SilentJoe+" from a subscriber that never answers: a timeout, for contrast")
	cfg.Mode.AddFlags(fs)
	cli.SetUsage(fs, "noresponders [flags]",
		`A greeter answers one request and drains; the same request sent again fails at once
with "no responders" (the server's status 503) instead of waiting out -timeout.
-silent adds a subscriber that never answers, which does wait out the timeout.
-serve and -request run the halves apart, against NATS_URL.`)
	check := func() error {
		if fs.NArg() > 0 {
			return cli.Usagef("unexpected argument %q: noresponders takes flags only", fs.Arg(0))
		}
		if cfg.Mode.Serve {
			if err := cli.Refuse(cli.SetFlags(fs), "with -serve, which sends no request", "timeout"); err != nil {
				return err
			}
		}
		return cfg.Check()
	}
	return fs, check
}

// Command chain measures the work a chain of services does for a caller
// that has already given up, with and without deadline propagation. A
// caller asks service A, which asks B, which asks C; C is slow. The caller
// gives up after -timeout. Without the middleware each service calls the
// next with a timeout of its own (-hop-timeout) and works on regardless;
// with it (hedge.DeadlineMicroHandler, hedge.SetContextDeadline) each
// service's context ends when the caller stops waiting, so B and C stop, and
// a request that is already expired when its turn comes is refused without
// running. Each row says how many handler-ms every service spent after the
// caller gave up.
//
//	go run ./chain [-requests 10] [-concurrency 1] [-timeout 100ms] [-work 300ms] [-hop-timeout 1s]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"reqreply/internal/cli"
)

func main() {
	cfg := Config{Requests: 10, Concurrency: 1, Timeout: 100 * time.Millisecond, Work: 300 * time.Millisecond, HopTimeout: time.Second}
	fs, check := flags(&cfg)
	os.Exit(cli.Main(fs, os.Args[1:], check, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, cfg, os.Stdout)
	}))
}

// flags returns the program's flag set, which parses into cfg, and the
// check cli.Main runs after parsing.
func flags(cfg *Config) (*flag.FlagSet, func() error) {
	fs := flag.NewFlagSet("chain", flag.ContinueOnError)
	fs.IntVar(&cfg.Requests, "requests", cfg.Requests, "requests the caller sends")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "requests the caller has in flight at once (each service takes one at a time)")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "how long the caller waits for each reply")
	fs.DurationVar(&cfg.Work, "work", cfg.Work, "how long C works on a request (in 1 ms steps, stopping when its context ends)")
	fs.DurationVar(&cfg.HopTimeout, "hop-timeout", cfg.HopTimeout, "without the middleware: each service's own timeout for its call and its work")
	cli.SetUsage(fs, "chain [flags]",
		`A caller asks A, A asks B, B asks C, and C is slow: the caller gives up after -timeout.
Run twice, without and with deadline propagation (hedge.DeadlineMicroHandler):
the handler-ms each service spent after its caller gave up.`)
	check := func() error {
		if fs.NArg() > 0 {
			return cli.Usagef("unexpected argument %q: chain takes flags only", fs.Arg(0))
		}
		return cfg.Check()
	}
	return fs, check
}

// Run runs the chain without and then with the deadline middleware, and
// writes a row of each to w:
//
//	chain A → B → C: 10 requests, 1 in flight, each given up after 100ms; C works 300ms; without the middleware each service's own timeout is 1s
//	                       handler-ms after the caller gave up
//	                           A       B       C   total   C ran  refused
//	without middleware      3734    3732    3730   11198      10        0
//	with middleware            0       0       0       1      10        0
//
// refused counts the requests the middleware answered as expired without
// running the handler: with -concurrency above 1, requests queue behind the
// one a service works on, and their deadline passes in the queue.
func Run(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	// 1. A connection per service and one for the caller, as if each were
	// a process of its own.
	conns, err := connect(env)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "chain A → B → C: %d requests, %d in flight, each given up after %v; C works %v; without the middleware each service's own timeout is %v\n",
		cfg.Requests, cfg.Concurrency, cfg.Timeout, cfg.Work, cfg.HopTimeout)
	fmt.Fprintf(w, "%-20s%s\n", "", "   handler-ms after the caller gave up")
	fmt.Fprintf(w, "%-20s%8s%8s%8s%8s%8s%9s\n", "", "A", "B", "C", "total", "C ran", "refused")
	// 2. The same load, without and with the middleware; each run waits
	// until every service has finished every request it took.
	for _, with := range []bool{false, true} {
		res, err := runChain(ctx, conns, cfg, with)
		if err != nil {
			return err
		}
		name := "without middleware"
		if with {
			name = "with middleware"
		}
		ms := func(d time.Duration) int64 { return d.Milliseconds() }
		fmt.Fprintf(w, "%-20s%8d%8d%8d%8d%8d%9d\n", name, ms(res.Wasted[0]), ms(res.Wasted[1]), ms(res.Wasted[2]),
			ms(res.Wasted[0]+res.Wasted[1]+res.Wasted[2]), res.Ran[2], res.Refused[0]+res.Refused[1]+res.Refused[2])
	}
	return nil
}

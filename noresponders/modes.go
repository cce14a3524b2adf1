// The halves apart: -serve keeps the greeter (and -silent's subscriber)
// serving until interrupted, for a -request run (or the nats CLI) elsewhere.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"

	"reqreply/internal/cli"
)

// serve is the -serve half: it says what it serves, reports the greeter's
// drain when the first request has come and gone, and then keeps its
// connection, without interest in greet.*, until ctx ends (nil then).
func serve(ctx context.Context, env *cli.Env, cfg Config, greeter *Greeter, nodes []string, w io.Writer) error {
	fmt.Fprintf(w, "serving %s on %s until interrupted: the greeter answers one request, then drains\n", GreetSubjects, cli.Redact(env.URL))
	cli.WriteNodes(w, env, nodes...)
	if !greeter.nc.HeadersSupported() {
		fmt.Fprintf(w, "the server does not support headers: %v; requests nobody serves will time out\n", ErrNoHeaders)
	}
	if cfg.Silent {
		fmt.Fprintf(w, "serving %s on %s: takes requests, never answers\n", SilentSubjects, cli.Redact(env.URL))
	}
	if err := greeter.WaitDrained(ctx); err != nil {
		if ctx.Err() != nil {
			// Interrupted before any request, a normal stop; or the
			// connection was lost for good, which WaitForInterrupt returns.
			return cli.WaitForInterrupt(ctx)
		}
		return err
	}
	fmt.Fprintf(w, "greeter drained: nobody subscribes to %s any more\n", GreetSubjects)
	return cli.WaitForInterrupt(ctx)
}

// requestHint is the first request's error, err. A -request run that got
// no responders is told why: the -serve half's greeter answers one request
// only, so a second -request run finds it drained.
func requestHint(cfg Config, err error) error {
	if cfg.Mode.Request && errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%w (nobody serves %s: start noresponders -serve, whose greeter answers one request and then drains, again before each -request run)", err, GreetSubjects)
	}
	return err
}

// What the singlereply program was asked to do and Run, the scenario top to
// bottom.

package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"reqreply/internal/cli"
)

// DefaultNames are the names greeted when none are given as arguments.
var DefaultNames = []string{"joe", "sue", "bob"}

// Config is what the singlereply program was asked to do.
type Config struct {
	// Names to greet, one request each, in order.
	Names []string
	// Timeout for each request; DefaultTimeout (500 ms) unless -timeout.
	Timeout time.Duration
	// Mode: both halves, or only -serve or -request.
	Mode cli.Mode
}

// Check validates cfg before anything connects: every name must be one
// subject token and the timeout positive. The error wraps cli.ErrUsage.
func (cfg *Config) Check() error {
	if err := cfg.Mode.Check(); err != nil {
		return err
	}
	if cfg.Timeout <= 0 {
		return cli.Usagef("-timeout %v must be > 0", cfg.Timeout)
	}
	for _, name := range cfg.Names {
		if _, err := GreetSubject(name); err != nil {
			return cli.Usagef("%w", err)
		}
	}
	return nil
}

// Run is the singlereply scenario. Unless cfg.Mode.Request, it starts the
// greeter on its own connection ("singlereply service"); unless
// cfg.Mode.Serve, it greets each of cfg.Names from a second connection
// ("singlereply requester") and writes one reply a line to w. With -serve it
// then serves until ctx ends. The first failed request ends the run with its
// error (see Greet for the errors).
func Run(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	// The responder side: one subscription on greet.*, flushed, so that it is
	// known to the server before any request is sent.
	if cfg.Mode.Serves() {
		nc, err := env.Connect("service")
		if err != nil {
			return err
		}
		if _, err := ServeGreeter(nc); err != nil {
			return err
		}
		if cfg.Mode.Serve {
			fmt.Fprintf(w, "serving %s on %s until interrupted\n", GreetSubjects, cli.Redact(env.URL))
			return cli.WaitForInterrupt(ctx)
		}
	}

	// The requester side: one request per name, each waiting for its single
	// reply (or failing fast if nobody serves greet.*).
	nc, err := env.Connect("requester")
	if err != nil {
		return err
	}
	for _, name := range cfg.Names {
		reply, err := Greet(ctx, nc, name, cfg.Timeout)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, reply)
	}
	return nil
}

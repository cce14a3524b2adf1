// What the singlereply program was asked to do and Run, the scenario top to
// bottom.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"reqreply/internal/cli"
)

// DefaultNames are the names greeted when none are given as arguments.
var DefaultNames = []string{"joe", "sue", "bob"}

// Lockdown is the program's -secure setup: the requester may publish only
// to GreetSubjects and read only its own inbox; the responder may take only those
// requests and publish only its replies (see cli.Lockdown).
var Lockdown = cli.Lockdown{Service: []string{GreetSubjects}}

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
// greeter on its own connection ("singlereply service"); a handler failure
// is answered with an error reply and reported on env's stderr. Unless
// cfg.Mode.Serve, it greets each of cfg.Names from a second connection
// ("singlereply requester") and writes one reply a line to w. With -serve
// it then serves until ctx ends, or until its connection is closed for good
// (the error then wraps cli.ErrConnectionLost).
//
// Every name gets its request, also after one fails, unless ctx ends: each
// fails within its timeout, so a dead server does not stall the run, it
// only makes each request fail. The error then counts the failures and
// joins their errors (see Greet), first to last, so errors.Is matches each.
func Run(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	// The responder side: one subscription on greet.*, flushed, so that it is
	// known to the server before any request is sent.
	if cfg.Mode.Serves() {
		nc, err := env.ConnectAs(cli.Responder, "service")
		if err != nil {
			return err
		}
		greeter := Greeter{Failed: func(subject string, err error) {
			env.Logf("%s service: %s: %v", env.Scenario, subject, err)
		}}
		if _, err := greeter.Serve(nc); err != nil {
			return err
		}
		if cfg.Mode.Serve {
			fmt.Fprintf(w, "serving %s on %s until interrupted\n", GreetSubjects, cli.Redact(env.URL))
			if !nc.HeadersSupported() {
				fmt.Fprintln(w, "the server does not support headers: a request whose handler fails gets no error reply and times out")
			}
			return cli.WaitForInterrupt(ctx)
		}
	}

	// The requester side: one request per name, each waiting for its single
	// reply (or failing fast if nobody serves greet.*).
	nc, err := env.ConnectAs(cli.Requester, "requester")
	if err != nil {
		return err
	}
	var errs []error
	sent := 0
	for _, name := range cfg.Names {
		if ctx.Err() != nil {
			break
		}
		sent++
		reply, err := Greet(ctx, nc, name, cfg.Timeout)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(w, reply)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d requests failed: %w", len(errs), sent, errors.Join(errs...))
	}
	return ctx.Err()
}

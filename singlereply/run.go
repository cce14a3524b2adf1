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
// Beyond one server (-cluster N, or NATS_URL listing several), the greeter
// connects to the first node and the requester to the second, and one line
// to w names each one's node ("nodes: greeter on node-1, requester on
// node-2"). Before the first request, the requester waits until the
// greeter's interest is visible from its own server (awaitGreeter: readiness
// probes, bounded by cli.SetupTimeout) and writes how long that took when it
// had to wait ("interest: waited ..."). A denied probe ends the run with
// the denial.
//
// Every name gets its request, also after one fails, unless ctx ends: each
// fails within its timeout, so a dead server does not stall the run, it
// only makes each request fail. The error then counts the failures, names
// the first MaxFailuresShown (see Greet) and counts the rest; it unwraps to
// every one, first to last, so errors.Is matches each.
func Run(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	// The responder side: one subscription on greet.*, flushed, so that it is
	// known to its server before any request is sent. With several nodes it
	// sits on the first.
	var nodes []string
	if cfg.Mode.Serves() {
		nc, err := env.ConnectNodeAs(cli.Responder, "service", env.ResponderNode(0))
		if err != nil {
			return err
		}
		nodes = append(nodes, "greeter on "+cli.ServerName(nc))
		greeter := Greeter{Failed: func(subject string, err error) {
			env.Logf("%s service: %s: %v", env.Scenario, subject, err)
		}}
		if _, err := greeter.Serve(nc); err != nil {
			return err
		}
		if cfg.Mode.Serve {
			fmt.Fprintf(w, "serving %s on %s until interrupted\n", GreetSubjects, cli.Redact(env.URL))
			cli.WriteNodes(w, env, nodes...)
			if !nc.HeadersSupported() {
				fmt.Fprintln(w, "the server does not support headers: a request whose handler fails gets no error reply and times out")
			}
			return cli.WaitForInterrupt(ctx)
		}
	}

	// The requester side, on another node than the greeter's when there are
	// several: one request per name, each waiting for its single reply (or
	// failing fast if nobody serves greet.*).
	nc, err := env.ConnectNodeAs(cli.Requester, "requester", env.RequesterNode())
	if err != nil {
		return err
	}
	cli.WriteNodes(w, env, append(nodes, "requester on "+cli.ServerName(nc))...)

	// Before the first request, wait until the greeter's interest is visible
	// from the requester's own server: at once on one server, after the
	// route has carried it on a cluster.
	if len(cfg.Names) > 0 && ctx.Err() == nil {
		subject, err := GreetSubject(cfg.Names[0])
		if err != nil {
			return err
		}
		if err := awaitGreeter(ctx, env, nc, subject, cfg.Timeout, w); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
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
		return failures{sent: sent, errs: errs}
	}
	return ctx.Err()
}

// MaxFailuresShown is how many failed requests Run's error names: 5. The
// others are counted ("and 12 more"), so that a run of many names that
// all fail says so in a line that can be read.
const MaxFailuresShown = 5

// failures is Run's error when requests failed: "<failed> of <sent>
// requests failed: " and the first MaxFailuresShown errors, one a line,
// then "and N more" for the others. It unwraps to every error, first to
// last, so errors.Is matches each.
type failures struct {
	sent int
	errs []error
}

func (f failures) Error() string {
	shown := f.errs[:min(len(f.errs), MaxFailuresShown)]
	msg := fmt.Sprintf("%d of %d requests failed: %v", len(f.errs), f.sent, errors.Join(shown...))
	if more := len(f.errs) - len(shown); more > 0 {
		msg += fmt.Sprintf("\nand %d more", more)
	}
	return msg
}

func (f failures) Unwrap() []error { return f.errs }

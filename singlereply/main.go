// main, and Run: the scenario's steps in order (flags in flags.go).

package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/nats-io/nats.go"

	"reqreply/internal/cli"
)

func main() {
	var cfg Config
	fs, check := flags(&cfg)
	os.Exit(cli.Main(fs, os.Args[1:], check, func(ctx context.Context, env *cli.Env) error {
		return Run(ctx, env, cfg, os.Stdout)
	}, cli.Secure(Lockdown)))
}

// Run is the singlereply scenario: a greeter answers on greet.*; a requester
// greets each of cfg.Names, one reply a line to w. cfg.Mode runs one half
// only (-serve: see serve). The error counts failed requests (failures).
func Run(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	// 1. The greeter subscribes to greet.* and answers on each reply subject
	// (msg.Respond), flushed, so the server knows it before any request.
	var nodes []string
	var sub *nats.Subscription
	if cfg.Mode.Serves() {
		svc, err := env.ConnectNodeAs(cli.Responder, "service", env.ResponderNode(0))
		if err != nil {
			return err
		}
		nodes = append(nodes, "greeter on "+cli.ServerName(svc))
		if sub, err = (Greeter{Failed: logFailure(env)}).Serve(svc); err != nil {
			return err
		}
		if cfg.Mode.Serve {
			return serve(ctx, env, svc, nodes, w)
		}
	}

	// 2. The requester (on another node, if several: topology.go) sends one
	// request per name; each waits for its single reply, or fails fast with
	// no responders. Every name gets its request, also after one fails.
	nc, err := env.ConnectNodeAs(cli.Requester, "requester", env.RequesterNode())
	if err != nil {
		return err
	}
	cli.WriteNodes(w, env, append(nodes, "requester on "+cli.ServerName(nc))...)
	if err := awaitFirst(ctx, env, nc, cfg, w); err != nil {
		return err
	}
	// With -msgtrace the first request carries the trace header, and the
	// servers' reports of where it went are printed after its reply.
	traced, err := cfg.MsgTrace.Begin(env, nc)
	if err != nil {
		return err
	}
	defer traced.Stop()
	var fails failures
	for i := 0; i < len(cfg.Names) && ctx.Err() == nil; i++ {
		fails.sent++
		reply, err := greetTraced(ctx, nc, cfg.Names[i], cfg.Timeout, traced.Header())
		if err != nil {
			fails.errs = append(fails.errs, err)
		} else {
			fmt.Fprintln(w, reply)
		}
		traced.Print(ctx, w)
		traced = nil
	}

	// 3. The greeter stops: Drain answers what it has already taken, then
	// unsubscribes. Only after a clean run: after a failure or an interrupt
	// the run reports that, and Env.Close drains the connections on exit.
	if sub != nil && len(fails.errs) == 0 && ctx.Err() == nil {
		if err := sub.Drain(); err != nil {
			return fmt.Errorf("drain %q: %w", GreetSubjects, err)
		}
	}
	if len(fails.errs) > 0 {
		return fails
	}
	return ctx.Err()
}

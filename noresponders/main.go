// main, and Run: the scenario's steps in order (flags in flags.go).

package main

import (
	"context"
	"errors"
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

// Run is the noresponders scenario: a greeter answers one request and
// drains; the same request again fails at once with no responders, and w
// shows how fast, next to cfg.Timeout. cfg.Silent adds a request that waits
// out its timeout; cfg.Mode runs one half only (-serve: see serve). The
// first failure ends the run (ErrNoHeaders, ErrUnexpectedReply, Ask's
// errors). On one server (durations vary):
//
//	hello, joe
//	greeter drained: nobody subscribes to greet.* any more
//	no responders: failed after 312µs instead of waiting out the 2s timeout
//	timeout: failed after 2.001s, the whole 2s timeout: silent.* has a subscriber that never answers
func Run(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	// 1. The greeter subscribes to greet.* and answers one request, draining
	// its subscription as it does (ServeOnce); with -silent, a subscriber
	// on silent.* takes requests and never answers. Both are flushed.
	var greeter *Greeter
	var nodes []string
	if cfg.Mode.Serves() {
		svc, err := env.ConnectNodeAs(cli.Responder, "service", env.ResponderNode(0))
		if err != nil {
			return err
		}
		nodes = append(nodes, responders(cfg)+" on "+cli.ServerName(svc))
		if !cfg.Mode.Serve && !svc.HeadersSupported() {
			return fmt.Errorf("connect %s: %w", cli.Redact(svc.ConnectedUrl()), ErrNoHeaders)
		}
		if greeter, err = ServeOnce(svc); err != nil {
			return err
		}
		if cfg.Silent {
			if _, err := ServeSilent(svc); err != nil {
				return err
			}
		}
		if cfg.Mode.Serve {
			return serve(ctx, env, cfg, greeter, nodes, w)
		}
	}

	// 2. The requester (on another node, if several: topology.go) needs
	// header support: the no-responders status is a header. It waits until
	// the greeter is visible from its server, then asks: the greeter answers
	// and starts draining.
	nc, err := env.ConnectNodeAs(cli.Requester, "requester", env.RequesterNode())
	if err != nil {
		return err
	}
	if !nc.HeadersSupported() {
		return fmt.Errorf("connect %s: %w", cli.Redact(nc.ConnectedUrl()), ErrNoHeaders)
	}
	cli.WriteNodes(w, env, append(nodes, "requester on "+cli.ServerName(nc))...)
	if err := awaitResponder(ctx, env, nc, GreetJoe, "greeter", cfg.Timeout, w); err != nil {
		return err
	}
	reply, _, err := askTraced(ctx, nc, GreetJoe, cfg.Timeout)
	if err != nil {
		return requestHint(cfg, err)
	}
	fmt.Fprintln(w, reply)

	// 3. When the greeter runs here, wait until its drain has finished,
	// then flush its connection: the PONG proves the server has read
	// everything sent before it, the UNSUB included. (The UNSUB went out
	// ahead of the reply; the wait shows how a program knows a drain is
	// over.)
	if greeter != nil {
		if err := greeter.waitGone(ctx, cli.DrainTimeout); err != nil {
			return err
		}
		fmt.Fprintf(w, "greeter drained: nobody subscribes to %s any more\n", GreetSubjects)
	}

	// 4. Wait until the greeter's interest is gone as the requester's own
	// server sees it (at once on one server; a cluster carries the UNSUB
	// over the route), then ask again: nobody subscribes, so the server
	// answers with a status-503 message and nats.go returns
	// nats.ErrNoResponders, long before the timeout.
	if err := awaitNoResponders(ctx, env, nc, GreetJoe, cfg.Timeout, w); err != nil {
		return err
	}
	_, took, err := askTraced(ctx, nc, GreetJoe, cfg.Timeout)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		fmt.Fprintf(w, "no responders: failed after %v instead of waiting out the %v timeout\n", cli.Round(took), cfg.Timeout)
	case err == nil:
		return fmt.Errorf("request %q: answered after the greeter drained, want no responders: %w (does something else serve %s?)", GreetJoe, ErrUnexpectedReply, GreetSubjects)
	default:
		return err
	}

	// 5. With -silent, the contrast: silent.* has a subscriber, so the
	// server delivers the request and sends no 503, and since no reply comes
	// either, the requester waits out the whole timeout.
	if cfg.Silent {
		return askSilent(ctx, env, cfg, nc, w)
	}
	return nil
}

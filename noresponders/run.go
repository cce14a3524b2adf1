// What the noresponders program was asked to do and Run, the scenario top to
// bottom.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/internal/cli"
)

// The subjects the requester asks: GreetJoe twice (answered, then no
// responders), SilentJoe once with -silent (a timeout).
const (
	GreetJoe  = "greet.joe"
	SilentJoe = "silent.joe"
)

// ErrUnexpectedReply is wrapped by Run's error when a request that should
// have gone unanswered got a reply: something other than this run's greeter
// (another -serve, `nats reply 'greet.*' ...`) still serves the subject.
var ErrUnexpectedReply = errors.New("unexpected reply")

// Lockdown is the program's -secure setup: the requester may publish only
// to GreetSubjects and SilentSubjects and read only its own inbox; the responder may take only those
// requests and publish only its replies (see cli.Lockdown).
var Lockdown = cli.Lockdown{Service: []string{GreetSubjects, SilentSubjects}}

// Config is what the noresponders program was asked to do.
type Config struct {
	// Timeout for each request; DefaultTimeout (2 s) unless -timeout.
	Timeout time.Duration
	// Silent adds the contrast: a request to SilentJoe, which a subscriber
	// takes and never answers, so it waits out Timeout (-silent).
	Silent bool
	// Mode: both halves, or only -serve or -request.
	Mode cli.Mode
}

// Check validates cfg before anything connects: the timeout must be
// positive, and -serve and -request exclude each other. The error wraps
// cli.ErrUsage.
func (cfg *Config) Check() error {
	if err := cfg.Mode.Check(); err != nil {
		return err
	}
	if cfg.Timeout <= 0 {
		return cli.Usagef("-timeout %v must be > 0", cfg.Timeout)
	}
	return nil
}

// Run is the noresponders scenario. Unless cfg.Mode.Request, it starts the
// one-request greeter (ServeOnce) and, with cfg.Silent, the silent
// subscriber (ServeSilent) on one connection ("noresponders service"); with
// -serve it reports the greeter's drain and serves until ctx ends. Unless
// cfg.Mode.Serve, it requests GreetJoe from a second connection
// ("noresponders requester") and writes the reply, waits for the greeter's
// drain when the greeter runs here, requests GreetJoe again and writes how
// fast that failed with nats.ErrNoResponders next to cfg.Timeout, and with
// cfg.Silent requests SilentJoe and writes how long its timeout took.
//
// Beyond one server (-cluster N, or NATS_URL listing several), the
// responders connect to the first node and the requester to the second,
// and one line names each one's node ("nodes: ..."). Before the first
// request the requester waits until the greeter's interest is visible from
// its own server, and before the second until that interest is gone from
// it (awaitResponder, awaitNoResponders: readiness probes bounded by
// cli.SetupTimeout); with -silent, before the last, until the silent
// subscriber's interest is visible. A wait that had to wait writes one
// "interest: waited ..." line.
//
// Output on one server, one line each (durations vary):
//
//	hello, joe
//	greeter drained: nobody subscribes to greet.* any more
//	no responders: failed after 312µs instead of waiting out the 2s timeout
//	timeout: failed after 2.001s, the whole 2s timeout: silent.* has a subscriber that never answers
//
// The error is the first request's (see Ask), the wait for the drain's, or
// one wrapping ErrUnexpectedReply when a request that should not be answered
// is; an unexpected outcome of the later requests is returned as Ask gave it.
// Each step needs the one before (the second request shows what the first
// one's drain did), so the first failure ends the run; each request fails
// within cfg.Timeout, also while the server is down. On a server without
// header support the error wraps ErrNoHeaders, before any request.
func Run(ctx context.Context, env *cli.Env, cfg Config, w io.Writer) error {
	// The responder side: the greeter, and with -silent the subscriber that
	// never answers, both flushed so the server knows them before any
	// request is sent.
	var greeter *Greeter
	var service *nats.Conn
	var nodes []string
	if cfg.Mode.Serves() {
		var err error
		if service, err = env.ConnectNodeAs(cli.Responder, "service", env.ResponderNode(0)); err != nil {
			return err
		}
		who := "greeter"
		if cfg.Silent {
			who = "greeter and silent subscriber"
		}
		nodes = append(nodes, who+" on "+cli.ServerName(service))
		if !cfg.Mode.Serve && !service.HeadersSupported() {
			return fmt.Errorf("connect %s: %w", cli.Redact(service.ConnectedUrl()), ErrNoHeaders)
		}
		if greeter, err = ServeOnce(service); err != nil {
			return err
		}
		if cfg.Silent {
			if _, err := ServeSilent(service); err != nil {
				return err
			}
		}
		if cfg.Mode.Serve {
			return serve(ctx, env, cfg, greeter, nodes, w)
		}
	}

	// The requester, on another node than the greeter's when there are
	// several.
	nc, err := env.ConnectNodeAs(cli.Requester, "requester", env.RequesterNode())
	if err != nil {
		return err
	}
	// The no-responders status is a message header: a server without
	// header support cannot send it, and the scenario cannot be shown.
	if !nc.HeadersSupported() {
		return fmt.Errorf("connect %s: %w", cli.Redact(nc.ConnectedUrl()), ErrNoHeaders)
	}
	cli.WriteNodes(w, env, append(nodes, "requester on "+cli.ServerName(nc))...)

	// Before the first request, wait until the greeter's interest is visible
	// from the requester's own server: at once on one server, after the
	// route has carried it on a cluster. The greeter answers the probes
	// without draining.
	if err := awaitResponder(ctx, env, nc, GreetJoe, "greeter", cfg.Timeout, w); err != nil {
		return err
	}

	// The first request finds the greeter and is answered; answering it, the
	// greeter starts draining its subscription.
	reply, _, err := Ask(ctx, nc, GreetJoe, cfg.Timeout)
	if err != nil {
		if cfg.Mode.Request && errors.Is(err, nats.ErrNoResponders) {
			// The -serve half's greeter answers one request only: a second
			// -request run finds it drained.
			return fmt.Errorf("%w (nobody serves %s: start noresponders -serve, whose greeter answers one request and then drains, again before each -request run)", err, GreetSubjects)
		}
		return err
	}
	fmt.Fprintln(w, reply)

	// When the greeter runs here, wait until its drain has finished, then
	// flush its connection: the PONG proves the server has read everything
	// sent before it, the UNSUB included. (The greeter sent its UNSUB ahead
	// of the reply, so the server dropped the interest before we even had
	// "hello, joe"; the wait shows how a program knows a drain is over.)
	if greeter != nil {
		wctx, cancel := context.WithTimeout(ctx, cli.DrainTimeout)
		err := greeter.WaitDrained(wctx)
		cancel()
		if err != nil {
			return err
		}
		if err := service.FlushTimeout(service.Opts.Timeout); err != nil {
			return fmt.Errorf("flush after draining %q: %w", GreetSubjects, err)
		}
		fmt.Fprintf(w, "greeter drained: nobody subscribes to %s any more\n", GreetSubjects)
	}

	// Wherever the greeter ran, wait until its interest is gone as the
	// requester's own server sees it: that server answers a probe with no
	// responders. On one server that is the first probe; on a cluster the
	// greeter's server forwards the UNSUB over the route, and until it
	// arrives a request would be routed to where nobody takes it and wait
	// out its timeout: no fast failure, and not what NATS promises.
	if err := awaitNoResponders(ctx, env, nc, GreetJoe, cfg.Timeout, w); err != nil {
		return err
	}

	// The same request again. Nobody subscribes to greet.joe now, so the
	// server answers the request itself, on its reply subject, with a
	// status-503 message, and nats.go returns nats.ErrNoResponders: long
	// before the timeout would have run out.
	_, took, err := Ask(ctx, nc, GreetJoe, cfg.Timeout)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		fmt.Fprintf(w, "no responders: failed after %v instead of waiting out the %v timeout\n", cli.Round(took), cfg.Timeout)
	case err == nil:
		return fmt.Errorf("request %q: answered after the greeter drained, want no responders: %w (does something else serve %s?)", GreetJoe, ErrUnexpectedReply, GreetSubjects)
	default:
		return err
	}

	// With -silent, the contrast: silent.* has a subscriber, so the server
	// delivers the request and sends no 503, and since no reply comes either
	// the requester can only wait out the whole timeout.
	if cfg.Silent {
		// Its interest too must be visible from the requester's server, or
		// the request gets no responders instead of the timeout. The silent
		// subscriber answers probes, never requests.
		if err := awaitResponder(ctx, env, nc, SilentJoe, "silent subscriber", cfg.Timeout, w); err != nil {
			return err
		}
		_, took, err := Ask(ctx, nc, SilentJoe, cfg.Timeout)
		switch {
		case errors.Is(err, nats.ErrTimeout):
			fmt.Fprintf(w, "timeout: failed after %v, the whole %v timeout: %s has a subscriber that never answers\n", cli.Round(took), cfg.Timeout, SilentSubjects)
		case err == nil:
			return fmt.Errorf("request %q: answered, want a timeout: %w", SilentJoe, ErrUnexpectedReply)
		case cfg.Mode.Request && errors.Is(err, nats.ErrNoResponders):
			return fmt.Errorf("%w (nobody serves %s: run the -serve half with -silent too)", err, SilentSubjects)
		default:
			return err
		}
	}
	return nil
}

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

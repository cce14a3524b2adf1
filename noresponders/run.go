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
// Output, one line each (durations vary):
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
	if cfg.Mode.Serves() {
		var err error
		if service, err = env.ConnectAs(cli.Responder, "service"); err != nil {
			return err
		}
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
			return serve(ctx, env, cfg, greeter, w)
		}
	}

	// The first request finds the greeter and is answered; answering it, the
	// greeter starts draining its subscription.
	nc, err := env.ConnectAs(cli.Requester, "requester")
	if err != nil {
		return err
	}
	// The no-responders status is a message header: a server without
	// header support cannot send it, and the scenario cannot be shown.
	if !nc.HeadersSupported() {
		return fmt.Errorf("connect %s: %w", cli.Redact(nc.ConnectedUrl()), ErrNoHeaders)
	}
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

	// The same request again. Nobody subscribes to greet.joe now, so the
	// server answers the request itself, on its reply subject, with a
	// status-503 message, and nats.go returns nats.ErrNoResponders: long
	// before the timeout would have run out.
	_, took, err := Ask(ctx, nc, GreetJoe, cfg.Timeout)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		fmt.Fprintf(w, "no responders: failed after %v instead of waiting out the %v timeout\n", round(took), cfg.Timeout)
	case err == nil:
		return fmt.Errorf("request %q: answered after the greeter drained, want no responders: %w (does something else serve %s?)", GreetJoe, ErrUnexpectedReply, GreetSubjects)
	default:
		return err
	}

	// With -silent, the contrast: silent.* has a subscriber, so the server
	// delivers the request and sends no 503, and since no reply comes either
	// the requester can only wait out the whole timeout.
	if cfg.Silent {
		_, took, err := Ask(ctx, nc, SilentJoe, cfg.Timeout)
		switch {
		case errors.Is(err, nats.ErrTimeout):
			fmt.Fprintf(w, "timeout: failed after %v, the whole %v timeout: %s has a subscriber that never answers\n", round(took), cfg.Timeout, SilentSubjects)
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
func serve(ctx context.Context, env *cli.Env, cfg Config, greeter *Greeter, w io.Writer) error {
	fmt.Fprintf(w, "serving %s on %s until interrupted: the greeter answers one request, then drains\n", GreetSubjects, cli.Redact(env.URL))
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

// round trims a measured duration for printing to about three significant
// digits: 312.456µs → 312µs, 1.23456ms → 1.23ms, 2.000731s → 2.001s.
func round(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Millisecond)
	}
}

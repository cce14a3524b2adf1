// A subscriber that takes requests and never answers: interest without replies.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"

	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/probe"
)

// SilentSubjects is served by a subscriber that takes every request and
// never answers it: the case no-responders cannot catch.
const SilentSubjects = "silent.*"

// ServeSilent subscribes nc to SilentSubjects with a handler that drops
// every request, and flushes, so a request sent afterwards finds the
// subscriber. The server sees interest, delivers the request and sends no
// 503; the requester can only wait out its timeout (nats.ErrTimeout). It
// does answer readiness probes (a request with probe.Header), with
// SilentProbeName, so that a requester on another server can wait for its
// interest. Stop
// it with Unsubscribe or Drain, or by closing nc. The error wraps the nats.go
// error of the failed subscribe or flush, or nats.ErrPermissionViolation
// when the server's permissions deny the subscription.
func ServeSilent(nc *nats.Conn) (*nats.Subscription, error) {
	// Subscribe, then flush, bounded by the connection's timeout (2 s by
	// default), not nats.go's fixed 10 s, so a server that stopped
	// answering fails fast; and a subscription the server's permissions
	// deny fails here, naming the subject, instead of serving nothing.
	sub, err := denials.SubscribeChecked(context.Background(), nc, SilentSubjects, "", func() (*nats.Subscription, error) {
		// A readiness probe is answered (probe.Handler): a requester on
		// another server learns that this interest has reached it.
		// Requests reach the handler, which drops them.
		return nc.Subscribe(SilentSubjects, probe.Handler(SilentProbeName, func(*nats.Msg) {}))
	})
	if err != nil {
		return nil, fmt.Errorf("serve %q: %w", SilentSubjects, err)
	}
	return sub, nil
}

// askSilent is the -silent step: it waits until the silent subscriber's
// interest is visible from nc's server (or the request would get no
// responders instead of the timeout; the subscriber answers probes, never
// requests), requests SilentJoe and writes how long its timeout took.
func askSilent(ctx context.Context, env *cli.Env, cfg Config, nc *nats.Conn, w io.Writer) error {
	if err := awaitResponder(ctx, env, nc, SilentJoe, "silent subscriber", cfg.Timeout, w); err != nil {
		return err
	}
	_, took, err := askTraced(ctx, nc, SilentJoe, cfg.Timeout)
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
	return nil
}

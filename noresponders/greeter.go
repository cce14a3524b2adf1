// The responder side: a greeter that answers one request and drains.

package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/denials"
	"reqreply/otelnats"
	"reqreply/probe"
	"reqreply/respond"
)

// GreetSubjects is the subject the greeter serves: one token after "greet."
// names who to greet. A request to greet.joe is answered "hello, joe".
const GreetSubjects = "greet.*"

// greetPrefix is GreetSubjects without its wildcard token.
const greetPrefix = "greet."

// Greeter is a greet.* service that answers one request and then goes away:
// the first request it takes starts a drain of its subscription. Make one
// with ServeOnce.
type Greeter struct {
	nc      *nats.Conn
	greet   func(name string) (string, error)
	sub     *nats.Subscription
	drained <-chan nats.SubStatus // closed once the subscription is closed

	once   sync.Once
	failed chan struct{} // closed if the drain could not start; err says why
	err    error
}

// ServeOnce subscribes nc to GreetSubjects and answers requests with
// "hello, <name>" until the first one arrives; handling that one, it drains
// the subscription (Subscription.Drain) before it sends the reply. It flushes
// before returning, so when it returns nil the server has the subscription
// and a request sent afterwards on any connection to that server finds it.
//
// Draining before replying is what makes the next request fail fast without
// any waiting: nats.go writes the UNSUB to the connection ahead of the reply,
// and the server reads a connection's protocol in order and removes the
// interest as it reads the UNSUB, so by the time the requester holds "hello,
// joe" its server no longer routes greet.* anywhere. Requests that reached
// the greeter before its UNSUB are still answered while the drain runs: that
// is what Drain adds to Unsubscribe. Messages without a reply subject are
// plain publishes, not requests: they get no answer and start no drain. A
// readiness probe (a request with probe.Header) is answered with
// GreeterProbeName and starts no drain either.
//
// The error wraps the nats.go error of the failed subscribe or flush
// (nats.ErrConnectionClosed, nats.ErrBadSubscription, ...), or
// nats.ErrPermissionViolation when the server's permissions deny the
// subscription (denials.SubscribeChecked).
func ServeOnce(nc *nats.Conn) (*Greeter, error) {
	return ServeOnceFunc(nc, Greeting)
}

// Greeting is the greeter's answer to a request for name: "hello, <name>".
func Greeting(name string) (string, error) { return "hello, " + name, nil }

// ServeOnceFunc is ServeOnce with greet making the answer. A greet that
// returns an error, or panics (the greeter recovers: respond.Recover), is
// answered with an error reply (respond.Error): no payload, and the headers
// Nats-Service-Error (the error) and Nats-Service-Error-Code ("500", or a
// *respond.ServiceError's own code), as nats.go's micro services do, so the
// requester learns of the failure at once instead of timing out (Ask
// returns a *respond.ServiceError). The first request still starts the
// drain. On a server without header support no error reply can be sent:
// that request goes unanswered and times out.
func ServeOnceFunc(nc *nats.Conn, greet func(name string) (string, error)) (*Greeter, error) {
	g := &Greeter{nc: nc, greet: greet, failed: make(chan struct{})}
	// Subscribe, then flush, bounded by the connection's timeout (2 s by
	// default), not nats.go's fixed 10 s, so a server that stopped
	// answering fails fast; and a subscription the server's permissions
	// deny fails here, naming the subject, instead of serving nothing.
	sub, err := denials.SubscribeChecked(context.Background(), nc, GreetSubjects, "", func() (*nats.Subscription, error) {
		// The hardening wraps the plain handler: probe.Handler answers a
		// readiness probe (probe.Await) at once with GreeterProbeName (not a
		// request of the scenario: it greets nobody and starts no drain);
		// respond.Recover turns a panic into an error reply.
		return nc.Subscribe(GreetSubjects, probe.Handler(GreeterProbeName, otelnats.Handler(respond.Recover(g.handle, nil))))
	})
	if err != nil {
		return nil, fmt.Errorf("serve %q: %w", GreetSubjects, err)
	}
	g.sub = sub
	g.drained = sub.StatusChanged(nats.SubscriptionClosed)
	return g, nil
}

// handle answers one greet.<name> request. It runs on the subscription's
// own goroutine, one message at a time, and reaches the subscription through
// m.Sub rather than g.sub, which ServeOnce may not have stored yet.
func (g *Greeter) handle(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	g.once.Do(func() {
		if err := m.Sub.Drain(); err != nil {
			g.err = fmt.Errorf("drain %q: %w", GreetSubjects, err)
			close(g.failed)
		}
	})
	reply, err := g.greet(strings.TrimPrefix(m.Subject, greetPrefix))
	if err != nil {
		// Without header support there is no error reply: the requester
		// times out, and Ask's error says the server lacks headers.
		_ = respond.Error(m, err)
		return
	}
	// A failed Respond (connection closed mid-drain) leaves the requester to
	// time out; there is no one else to tell.
	_ = m.Respond([]byte(reply))
}

// WaitDrained blocks until the greeter's drain has finished: nats.go has
// flushed the UNSUB to the server, every request received before it has been
// answered, and the subscription is closed (Subscription.IsValid is false).
// It returns nil then; the error that kept the drain from starting (wrapping
// nats.ErrConnectionClosed, say); or ctx's error, wrapped, if ctx ends first,
// which is also how to bound the wait. Before the first request there is no
// drain to wait for, so it waits for that request too.
func (g *Greeter) WaitDrained(ctx context.Context) error {
	select {
	case <-g.drained:
		return nil
	case <-g.failed:
		return g.err
	case <-ctx.Done():
		return fmt.Errorf("wait for %q to drain: %w", GreetSubjects, ctx.Err())
	}
}

// waitGone waits, at most timeout, until the greeter's drain has finished
// (WaitDrained), then flushes its connection: the PONG proves the server
// has read everything sent before it, the UNSUB included.
func (g *Greeter) waitGone(ctx context.Context, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	err := g.WaitDrained(wctx)
	cancel()
	if err != nil {
		return err
	}
	if err := g.nc.FlushTimeout(g.nc.Opts.Timeout); err != nil {
		return fmt.Errorf("flush after draining %q: %w", GreetSubjects, err)
	}
	return nil
}

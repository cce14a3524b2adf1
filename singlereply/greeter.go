// The responder side: a greeter on greet.* answering on each reply subject,
// with an error reply, not silence, when its handler fails.

package main

import (
	"context"
	"fmt"
	"strings"

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

// Greeter answers requests on GreetSubjects. Its zero value greets with
// Greeting.
type Greeter struct {
	// Greet makes the answer to a request for name; Greeting unless set.
	// An error, or a panic, which the greeter recovers from
	// (respond.Recover; the error wraps respond.ErrPanic), is answered
	// with an error reply (see respond.ServiceError), so the requester
	// learns of it at once instead of waiting out its timeout. The greeter
	// goes on serving.
	Greet func(name string) (string, error)
	// Failed, if set, is told of each request whose handler failed, with
	// the subject and the error; also when no error reply could be sent
	// (the server does not support headers, or the connection is closed).
	Failed func(subject string, err error)
}

// Greeting is the default answer: "hello, <name>".
func Greeting(name string) (string, error) { return "hello, " + name, nil }

// ServeGreeter starts the default Greeter on nc: Greeter{}.Serve(nc).
func ServeGreeter(nc *nats.Conn) (*nats.Subscription, error) {
	return Greeter{}.Serve(nc)
}

// Serve subscribes nc to GreetSubjects and answers each request on its
// reply subject. It flushes before returning, so when it returns nil the
// server has the subscription and a request sent afterwards on any
// connection to that server finds the responder (on a cluster, interest
// still has to propagate to the other nodes). Messages without a reply
// subject are plain publishes, not requests, and get no answer. A readiness
// probe (a request with probe.Header) is answered with ProbeName and is
// not greeted.
//
// A failed handler is answered with an empty payload and the headers
// Nats-Service-Error (the description) and Nats-Service-Error-Code (the
// code; "500" unless the error is a *respond.ServiceError with its own),
// as nats.go's micro services do (respond.Error). Headers need nats-server
// 2.2 or later with header support: on a server without it
// (nc.HeadersSupported() false) no error reply can be sent, and a plain one
// could not be told from a greeting, so the request goes unanswered, Failed
// is told why, and the requester times out; Greet's error then says the
// server lacks headers.
//
// Stop the service with sub.Drain(), which answers what was already received
// before unsubscribing, or by draining nc. The error wraps the nats.go error
// of the failed subscribe or flush (nats.ErrConnectionClosed, ...), or
// nats.ErrPermissionViolation when the server's permissions deny the
// subscription (denials.SubscribeChecked).
func (g Greeter) Serve(nc *nats.Conn) (*nats.Subscription, error) {
	greet := g.Greet
	if greet == nil {
		greet = Greeting
	}
	// failed tells g.Failed of a request whose greeting failed or panicked.
	failed := func(m *nats.Msg, err error) {
		if g.Failed != nil {
			g.Failed(m.Subject, err)
		}
	}
	handle := func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		reply, err := greet(strings.TrimPrefix(m.Subject, greetPrefix))
		if err == nil {
			// A failed Respond (connection closed mid-drain) leaves the
			// requester to time out; there is no one else to tell.
			_ = m.Respond([]byte(reply))
			return
		}
		if rerr := respond.Error(m, err); rerr != nil {
			err = fmt.Errorf("%w; no error reply sent: %w", err, rerr)
		}
		failed(m, err)
	}
	// Subscribe, then flush, bounded by the connection's timeout (2 s by
	// default), not nats.go's fixed 10 s, so a server that stopped
	// answering fails fast; and a subscription the server's permissions
	// deny fails here, naming the subject, instead of serving nothing.
	sub, err := denials.SubscribeChecked(context.Background(), nc, GreetSubjects, "", func() (*nats.Subscription, error) {
		// The hardening wraps the plain handler: probe.Handler answers a
		// readiness probe (probe.Await) at once with ProbeName, so a
		// requester on another server learns that this greeter's interest
		// has reached it, and greets nobody; respond.Recover turns a panic
		// into an error reply.
		return nc.Subscribe(GreetSubjects, probe.Handler(ProbeName, otelnats.Handler(respond.Recover(handle, failed))))
	})
	if err != nil {
		return nil, fmt.Errorf("serve %q: %w", GreetSubjects, err)
	}
	return sub, nil
}

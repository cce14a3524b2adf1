// The responder side: a greeter on greet.* answering on each reply subject.

package main

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// GreetSubjects is the subject the greeter serves: one token after "greet."
// names who to greet. A request to greet.joe is answered "hello, joe".
const GreetSubjects = "greet.*"

// greetPrefix is GreetSubjects without its wildcard token.
const greetPrefix = "greet."

// ServeGreeter subscribes nc to GreetSubjects and answers each request on its
// reply subject with "hello, <name>". It flushes before returning, so when it
// returns nil the server has the subscription and a request sent afterwards
// on any connection to that server finds the responder (on a cluster,
// interest still has to propagate to the other nodes). Messages without a
// reply subject are plain publishes, not requests, and get no answer.
//
// Stop the service with sub.Drain(), which answers what was already received
// before unsubscribing, or by draining nc. The error wraps the nats.go error
// of the failed subscribe or flush (nats.ErrConnectionClosed, ...).
func ServeGreeter(nc *nats.Conn) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(GreetSubjects, func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		// A failed Respond (connection closed mid-drain) leaves the requester
		// to time out; there is no one else to tell.
		_ = m.Respond([]byte(greeting(m.Subject)))
	})
	if err != nil {
		return nil, fmt.Errorf("serve %q: %w", GreetSubjects, err)
	}
	// Bounded by the connection's timeout (2 s by default), not nats.go's
	// fixed 10 s, so a server that stopped answering fails fast.
	if err := nc.FlushTimeout(nc.Opts.Timeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("serve %q: flush: %w", GreetSubjects, err)
	}
	return sub, nil
}

// greeting is the answer to a request on subject greet.<name>.
func greeting(subject string) string {
	return "hello, " + strings.TrimPrefix(subject, greetPrefix)
}

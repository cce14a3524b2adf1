// Probe middleware: a responder's handler wrapped so that readiness probes
// are answered at once and never reach it.

package probe

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Handler returns a nats.MsgHandler that answers a readiness probe (a
// message with Header) with name as the payload and in ResponderHeader, and passes every other
// message to h: wrap a responder's handler with it, and a requester's Await
// sees the responder as soon as its interest reaches the requester's
// server, without the probes being worked on or counted. name is what
// AllOf and AnyOf match; a probe without a reply subject is dropped. See
// Answer for a handler that decides itself.
func Handler(name string, h nats.MsgHandler) nats.MsgHandler {
	return func(m *nats.Msg) {
		if Answer(m, name) {
			return
		}
		h(m)
	}
}

// Skip returns a nats.MsgHandler that drops readiness probes, unanswered,
// and passes every other message to h: for a responder on a connection
// where another one's Handler already answers the probes, so that a probe
// costs one answer per connection, not one per responder.
func Skip(h nats.MsgHandler) nats.MsgHandler {
	return func(m *nats.Msg) {
		if Is(m) {
			return
		}
		h(m)
	}
}

// MicroHandler is Handler for a nats.go/micro endpoint: a request with
// Header is answered with name as the payload and in ResponderHeader, every other request goes to
// h. micro counts the probes in the endpoint's stats all the same (they are
// requests to it): to keep them out of the counts, reset the stats after
// the wait (Service.Reset), with a wait that is Want.Settled.
func MicroHandler(name string, h micro.Handler) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		if req.Headers().Get(Header) != "" {
			_ = req.Respond([]byte(name), micro.WithHeaders(micro.Headers{ResponderHeader: []string{name}})) // a lost answer is probed again
			return
		}
		h.Handle(req)
	})
}

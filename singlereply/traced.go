// Telemetry around the seed's request, attached from outside: Greet stays
// nats.go's own call.

package main

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/otelnats"
)

// greetTraced is GreetWith in a client span "request greet.<name>" when
// telemetry is on (the OTEL_* variables, internal/telemetry): the span's
// trace context rides in header, beside -msgtrace's, so the greeter's span
// (otelnats.Handler) continues the trace. Off, it is GreetWith.
func greetTraced(ctx context.Context, nc *nats.Conn, name string, timeout time.Duration, header nats.Header) (string, error) {
	subject, _ := GreetSubject(name) // a bad name: GreetWith refuses it
	msg := &nats.Msg{Subject: subject, Header: header}
	ctx, done := otelnats.StartRequest(ctx, msg)
	if header == nil && nc != nil && !nc.HeadersSupported() {
		// A server without header support takes no trace context: the
		// greeting goes without it rather than fail.
		msg.Header = nil
	}
	reply, err := GreetWith(ctx, nc, name, timeout, msg.Header)
	done(nil, err)
	return reply, err
}

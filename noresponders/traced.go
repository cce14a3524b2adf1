// Telemetry around the scenario's requests, attached from outside: Ask
// stays nats.go's own call.

package main

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/otelnats"
)

// askTraced is Ask in a client span "request <subject>" when telemetry is
// on (the OTEL_* variables, internal/telemetry), its trace context in the
// request's headers (AskWith); a no-responders answer gives the span error
// status and error.type no_responders. Off, it is Ask.
func askTraced(ctx context.Context, nc *nats.Conn, subject string, timeout time.Duration) (string, time.Duration, error) {
	msg := &nats.Msg{Subject: subject}
	ctx, done := otelnats.StartRequest(ctx, msg)
	if nc != nil && !nc.HeadersSupported() {
		// A server without header support takes no trace context: the
		// request goes without it rather than fail.
		msg.Header = nil
	}
	reply, took, err := AskWith(ctx, nc, subject, timeout, msg.Header)
	done(nil, err)
	return reply, took, err
}

// One request, nats.go's own call, in a client span with the trace context
// in its headers.

package otelnats

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Request is RequestMsg of a message with subject and data.
func (t *Telemetry) Request(ctx context.Context, nc *nats.Conn, subject string, data []byte) (*nats.Msg, error) {
	return t.RequestMsg(ctx, nc, &nats.Msg{Subject: subject, Data: data})
}

// RequestMsg sends msg with nc.RequestMsgWithContext, in a client span
// "request <subject>" (messaging.operation.name "request", type "send")
// whose trace context it injects into a copy of msg's headers (msg itself
// is not changed), and records messaging.client.operation.duration. The
// reply and error are nats.go's, unchanged: nats.ErrNoResponders at once
// when nobody subscribes, nats.ErrTimeout or context.DeadlineExceeded at
// ctx's deadline (nats.go needs one), context.Canceled, nats.ErrConnectionClosed,
// nats.ErrInvalidContext for a nil ctx, nats.ErrBadSubject, ...; the span
// then has error status and error.type (ErrorType). On a server without
// header support, a msg without headers is sent without the trace context
// (the span is still made). A reply with micro's
// error headers (an error reply) is a reply: its span has error status and
// error.type the service error's code. With tracing and metrics off it is
// nc.RequestMsgWithContext(ctx, msg) and nothing else.
func (t *Telemetry) RequestMsg(ctx context.Context, nc *nats.Conn, msg *nats.Msg) (*nats.Msg, error) {
	if ctx == nil || msg == nil {
		return nc.RequestMsgWithContext(ctx, msg)
	}
	tracing, metrics := t.tracing(ctx), t.m.on(ctx)
	if !tracing && !metrics {
		return nc.RequestMsgWithContext(ctx, msg)
	}
	if tracing {
		var h nats.Header
		// A server without header support takes no trace context: a
		// request without headers goes without one rather than fail.
		if len(msg.Header) > 0 || nc == nil || nc.HeadersSupported() {
			h = make(nats.Header, len(msg.Header)+2)
			for k, v := range msg.Header {
				h[k] = v
			}
		}
		msg = &nats.Msg{Subject: msg.Subject, Reply: msg.Reply, Data: msg.Data, Header: h}
	}
	ctx, done := t.start(ctx, msg, tracing, metrics)
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	done(reply, err)
	return reply, err
}

// StartRequest is RequestMsg's span and metric for a request its caller
// sends itself, with nats.go's own call, as singlereply.GreetWith and
// noresponders.AskWith do: it starts the client span "request <subject>",
// injects its trace context into msg.Header (made when nil; msg is changed,
// so pass the message the request will send, or one whose Header it will
// carry), and returns the span's context, to send the request with, and
// done, to call once with the reply (nil when the caller keeps none) and
// nats.go's error. With tracing and metrics off, or a nil ctx or msg, it
// returns ctx and a done that does nothing, and allocates nothing. On a
// server without header support (nc.HeadersSupported false) a request
// with headers fails: leave msg.Header out of the send when it had none
// before, as singlereply and noresponders do.
func (t *Telemetry) StartRequest(ctx context.Context, msg *nats.Msg) (context.Context, func(reply *nats.Msg, err error)) {
	if ctx == nil || msg == nil {
		return ctx, doneNothing
	}
	tracing, metrics := t.tracing(ctx), t.m.on(ctx)
	if !tracing && !metrics {
		return ctx, doneNothing
	}
	if tracing && msg.Header == nil {
		msg.Header = nats.Header{}
	}
	return t.start(ctx, msg, tracing, metrics)
}

// doneNothing is StartRequest's done when telemetry is off.
func doneNothing(*nats.Msg, error) {}

// start begins a request's span (injecting its trace context into
// msg.Header unless it is nil) and its duration, and returns the function
// that ends both.
func (t *Telemetry) start(ctx context.Context, msg *nats.Msg, tracing, metrics bool) (context.Context, func(*nats.Msg, error)) {
	var start time.Time
	if metrics {
		start = time.Now()
	}
	var span trace.Span
	if tracing {
		ctx, span = t.tracer.Start(ctx, "request "+msg.Subject, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(KeySystem.String("nats"), KeyDestination.String(msg.Subject),
				KeyOperationType.String("send"), KeyOperationName.String("request"),
				KeyBodySize.Int(len(msg.Data))))
		if msg.Header != nil {
			t.Inject(ctx, msg.Header)
		}
	}
	return ctx, func(reply *nats.Msg, err error) {
		if tracing {
			endSpan(span, err, reply)
		}
		if metrics {
			t.m.operation(ctx, "request", start, err)
		}
	}
}

// endSpan sets span's status from err, or from reply's service error
// headers, and ends it.
func endSpan(span trace.Span, err error, reply *nats.Msg) {
	switch {
	case err != nil:
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(KeyErrorType.String(ErrorType(err)))
	case reply != nil && reply.Header != nil:
		if code, desc, ok := serviceError(reply.Header); ok {
			span.SetStatus(codes.Error, desc)
			span.SetAttributes(KeyErrorType.String(code))
		}
	}
	span.End()
}

// serviceError reads micro's error headers: the code (Nats-Service-Error-Code)
// and description (Nats-Service-Error), ok when either is set.
func serviceError(h nats.Header) (code, desc string, ok bool) {
	code, desc = h.Get(micro.ErrorCodeHeader), h.Get(micro.ErrorHeader)
	if code == "" && desc == "" {
		return "", "", false
	}
	if code == "" {
		code = "_OTHER"
	}
	return code, desc, true
}

// Request is Default().Request.
func Request(ctx context.Context, nc *nats.Conn, subject string, data []byte) (*nats.Msg, error) {
	return Default().Request(ctx, nc, subject, data)
}

// RequestMsg is Default().RequestMsg.
func RequestMsg(ctx context.Context, nc *nats.Conn, msg *nats.Msg) (*nats.Msg, error) {
	return Default().RequestMsg(ctx, nc, msg)
}

// StartRequest is Default().StartRequest.
func StartRequest(ctx context.Context, msg *nats.Msg) (context.Context, func(reply *nats.Msg, err error)) {
	return Default().StartRequest(ctx, msg)
}

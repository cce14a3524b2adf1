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
// then has error status and error.type (ErrorType). A reply with micro's
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
		h := make(nats.Header, len(msg.Header)+2)
		for k, v := range msg.Header {
			h[k] = v
		}
		t.Inject(ctx, h)
		msg = &nats.Msg{Subject: msg.Subject, Reply: msg.Reply, Data: msg.Data, Header: h}
	}
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	if tracing {
		endSpan(span, err, reply)
	}
	if metrics {
		t.m.operation(ctx, "request", start, err)
	}
	return reply, err
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

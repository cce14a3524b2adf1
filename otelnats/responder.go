// The responder side: a server span per request handled, continuing the
// requester's trace from the request's headers.

package otelnats

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Handler wraps h in a server span "process <subject>"
// (messaging.operation.type and name "process") that continues the trace
// the request's headers carry, and records messaging.process.duration.
// A panic of h is recorded as the span's error (error.type "panic") and
// goes on up. nats.go gives a plain handler's replies no hook, so an error
// reply it sends (respond.Error) does not mark the span: use MicroHandler,
// or respond through a micro service, for that. With tracing and metrics
// off, the handler is h itself.
func (t *Telemetry) Handler(h nats.MsgHandler) nats.MsgHandler {
	return func(m *nats.Msg) {
		ctx := context.Background()
		tracing, metrics := t.tracing(ctx), t.m.processDuration.Enabled(ctx)
		if !tracing && !metrics {
			h(m)
			return
		}
		p := t.begin(ctx, m.Subject, m.Header, len(m.Data), tracing, metrics)
		defer p.end()
		h(m)
	}
}

// MicroHandler wraps h, a micro endpoint's handler, as Handler does, and
// also marks the span with error status and error.type the code when h
// replies with req.Error (micro's error headers). Inside h, ContextOf(req)
// is the span's context, to continue the trace into requests of h's own.
func (t *Telemetry) MicroHandler(h micro.Handler) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		ctx := context.Background()
		hdr := nats.Header(req.Headers())
		tracing, metrics := t.tracing(ctx) || hasTraceContext(hdr), t.m.processDuration.Enabled(ctx)
		if !tracing && !metrics {
			h.Handle(req)
			return
		}
		p := t.begin(ctx, req.Subject(), hdr, len(req.Data()), tracing, metrics)
		defer p.end()
		h.Handle(&tracedRequest{Request: req, p: p})
	})
}

// ContextOf returns the context of the span MicroHandler made for req,
// context.Background() for a request it did not wrap.
func ContextOf(req micro.Request) context.Context {
	if r, ok := req.(*tracedRequest); ok {
		return r.p.ctx
	}
	return context.Background()
}

// hasTraceContext reports whether h carries a W3C trace context, in any
// spelling of its key.
func hasTraceContext(h nats.Header) bool {
	return h != nil && HeaderCarrier(h).Get("traceparent") != ""
}

// processing is one request being handled.
type processing struct {
	t       *Telemetry
	ctx     context.Context
	span    trace.Span // nil when not tracing
	start   time.Time
	metrics bool
	errType string
}

func (t *Telemetry) begin(ctx context.Context, subject string, h nats.Header, size int, tracing, metrics bool) *processing {
	p := &processing{t: t, ctx: ctx, metrics: metrics}
	if metrics {
		p.start = time.Now()
	}
	if tracing {
		p.ctx, p.span = t.tracer.Start(t.Extract(ctx, h), "process "+subject, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(KeySystem.String("nats"), KeyDestination.String(subject),
				KeyOperationType.String("process"), KeyOperationName.String("process"),
				KeyBodySize.Int(size)))
	}
	return p
}

// failed marks the handling as failed with errType and description.
func (p *processing) failed(errType, desc string) {
	p.errType = errType
	if p.span != nil {
		p.span.SetStatus(codes.Error, desc)
		p.span.SetAttributes(KeyErrorType.String(errType))
	}
}

// end ends the span and records the duration; a panic under way is
// recorded and goes on.
func (p *processing) end() {
	if r := recover(); r != nil {
		p.failed("panic", fmt.Sprint(r))
		p.finish()
		panic(r)
	}
	p.finish()
}

func (p *processing) finish() {
	if p.span != nil {
		p.span.End()
	}
	if p.metrics {
		opts := metric.WithAttributes(KeySystem.String("nats"))
		if p.errType != "" {
			opts = metric.WithAttributes(KeySystem.String("nats"), KeyErrorType.String(p.errType))
		}
		p.t.m.processDuration.Record(context.Background(), time.Since(p.start).Seconds(), opts)
	}
}

// tracedRequest is a micro.Request whose Error marks its span.
type tracedRequest struct {
	micro.Request
	p *processing
}

func (r *tracedRequest) Error(code, description string, data []byte, opts ...micro.RespondOpt) error {
	r.p.failed(code, description)
	return r.Request.Error(code, description, data, opts...)
}

// Handler is Default().Handler.
func Handler(h nats.MsgHandler) nats.MsgHandler { return Default().Handler(h) }

// MicroHandler is Default().MicroHandler.
func MicroHandler(h micro.Handler) micro.Handler { return Default().MicroHandler(h) }

// The Telemetry: the providers, the tracer and the instruments, made once
// and shared by every wrapper; and whether tracing is on at all.

package otelnats

import (
	"context"
	"errors"
	"sync"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of the tracer and meter:
// "reqreply/otelnats".
const ScopeName = "reqreply/otelnats"

// The attribute keys of the spans and metrics: OpenTelemetry's messaging
// semantic conventions where they have one, reqreply.* for the suite's own.
const (
	// KeySystem is messaging.system, always "nats".
	KeySystem = attribute.Key("messaging.system")
	// KeyDestination is messaging.destination.name: the request subject.
	KeyDestination = attribute.Key("messaging.destination.name")
	// KeyOperationType is messaging.operation.type: "send" for a request,
	// a gather or a copy, "process" for a responder.
	KeyOperationType = attribute.Key("messaging.operation.type")
	// KeyOperationName is messaging.operation.name: "request", "gather",
	// "hedged request", "send" (one copy of it) or "process".
	KeyOperationName = attribute.Key("messaging.operation.name")
	// KeyBodySize is messaging.message.body.size: the request's payload
	// in bytes.
	KeyBodySize = attribute.Key("messaging.message.body.size")
	// KeyErrorType is error.type: see ErrorType.
	KeyErrorType = attribute.Key("error.type")
	// KeyResponder is reqreply.responder: a reply's gather.ResponderHeader.
	KeyResponder = attribute.Key("reqreply.responder")
	// KeyOffset is reqreply.reply.offset_us: a reply's arrival, in
	// microseconds after its gather's request was sent (gather.Reply.At).
	KeyOffset = attribute.Key("reqreply.reply.offset_us")
	// KeyVariant is reqreply.gather.variant: the gather.Variant's Name.
	KeyVariant = attribute.Key("reqreply.gather.variant")
	// KeyStopReason is reqreply.gather.stop_reason: gather.StopReason's
	// String ("max reached", ...).
	KeyStopReason = attribute.Key("reqreply.gather.stop_reason")
	// KeyReplies, KeyDropped, KeySkipped and KeyUnread are a gather's
	// Result counts: Count, Dropped, Skipped and Unread (late: left unread
	// when it ended).
	KeyReplies = attribute.Key("reqreply.gather.replies")
	KeyDropped = attribute.Key("reqreply.gather.dropped")
	KeySkipped = attribute.Key("reqreply.gather.skipped")
	KeyUnread  = attribute.Key("reqreply.gather.unread")
	// KeyCopy is reqreply.hedge.copy: a copy's number, 0 for the first.
	KeyCopy = attribute.Key("reqreply.hedge.copy")
	// KeyCopyKind is reqreply.hedge.kind: hedge.CopyKind's String.
	KeyCopyKind = attribute.Key("reqreply.hedge.kind")
	// KeyWon is reqreply.hedge.won: whether the caller got this copy's
	// reply.
	KeyWon = attribute.Key("reqreply.hedge.won")
)

// Telemetry makes the spans and records the metrics of every wrapper in
// this package, from one TracerProvider, MeterProvider and propagator.
// Make one with New (or use Default) and share it: its instruments are made
// once. Safe for concurrent use.
type Telemetry struct {
	tp     trace.TracerProvider // nil: the global one, read at each use
	tracer trace.Tracer
	prop   propagation.TextMapPropagator // nil: the global one, or W3C
	m      instruments
}

// Option configures a Telemetry made by New.
type Option func(*Telemetry)

// WithTracerProvider makes the spans with tp; default (or nil) the global
// otel.GetTracerProvider(), read at each use.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(t *Telemetry) { t.tp = tp }
}

// WithMeterProvider records the metrics with mp; default (or nil) the
// global otel.GetMeterProvider(), whose instruments forward to the
// provider set later with otel.SetMeterProvider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(t *Telemetry) { t.m.mp = mp }
}

// WithPropagator injects and extracts the trace context with p; default
// (or nil) the global otel.GetTextMapPropagator() once one is set, else
// W3C trace context and baggage (traceparent, tracestate, baggage).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(t *Telemetry) { t.prop = p }
}

// New returns a Telemetry with opts. The instruments are made here: an
// error making one (a bad name for the MeterProvider) is returned.
func New(opts ...Option) (*Telemetry, error) {
	t := &Telemetry{}
	for _, o := range opts {
		if o != nil {
			o(t)
		}
	}
	tp := t.tp
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	t.tracer = tp.Tracer(ScopeName)
	mp := t.m.mp
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if err := t.m.init(mp.Meter(ScopeName)); err != nil {
		return nil, err
	}
	return t, nil
}

var (
	defaultOnce sync.Once
	defaultT    *Telemetry
)

// Default returns the Telemetry of the global providers and propagator,
// made on first use; the package-level functions use it.
func Default() *Telemetry {
	defaultOnce.Do(func() {
		t, err := New()
		if err != nil {
			// The global meter's instruments take any valid name.
			panic(err)
		}
		defaultT = t
	})
	return defaultT
}

// unsetTracerProvider is the global provider before any is set: a no-op
// that forwards to the one otel.SetTracerProvider sets later.
var unsetTracerProvider = otel.GetTracerProvider()

// tracing reports whether spans would be recorded or carried on: false for
// the no-op providers (and the global one before any is set) unless ctx
// carries a trace context to pass on. It neither allocates nor reads the
// clock.
func (t *Telemetry) tracing(ctx context.Context) bool {
	tp := t.tp
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if tp == unsetTracerProvider {
		return trace.SpanContextFromContext(ctx).IsValid()
	}
	if _, ok := tp.(noop.TracerProvider); ok {
		return trace.SpanContextFromContext(ctx).IsValid()
	}
	return true
}

// propagator returns the propagator to inject and extract with.
func (t *Telemetry) propagator() propagation.TextMapPropagator {
	if t.prop != nil {
		return t.prop
	}
	if p := otel.GetTextMapPropagator(); len(p.Fields()) > 0 {
		return p
	}
	return w3c
}

var w3c = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// ErrorType is the error.type of err, as the spans and metrics record it,
// the first that err wraps of: "denied" (nats.ErrPermissionViolation),
// "timeout" (nats.ErrTimeout, context.DeadlineExceeded; also a retried
// request whose retries met no responders until its deadline),
// "no_responders" (nats.ErrNoResponders), "cancelled" (context.Canceled), "closed"
// (nats.ErrConnectionClosed, nats.ErrConnectionDraining,
// nats.ErrBadSubscription), "slow_consumer" (nats.ErrSlowConsumer), "" for
// nil, else "_OTHER".
func ErrorType(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, nats.ErrPermissionViolation):
		return "denied"
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		// Before no responders: a retried request whose retries spent its
		// deadline (hedge.ErrBudgetSpent) wraps both, and timed out.
		return "timeout"
	case errors.Is(err, nats.ErrNoResponders):
		return "no_responders"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrBadSubscription):
		return "closed"
	case errors.Is(err, nats.ErrSlowConsumer):
		return "slow_consumer"
	}
	return "_OTHER"
}

// A gather in a client span: the trace context in its request's headers, an
// event per reply, its stop reason and counts; and its metrics.

package otelnats

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"reqreply/gather"
)

// Gather is gather.Gather through v, in a client span "gather <subject>"
// (messaging.operation.name "gather", type "send") that covers the one
// gather, from just before its request is sent to its stop: the request
// carries the span's trace context in its headers (added to those of a
// gather.Header option), the span has an event "reply" per reply
// (reqreply.responder, reqreply.reply.offset_us, at the time it is handed out) and,
// at its end, reqreply.gather.stop_reason, .replies, .dropped, .skipped and
// .unread; error status and error.type when the gather ends with an error
// (no_responders, denied, cancelled, closed, ...). It records
// messaging.client.operation.duration, reqreply.gather.replies,
// reqreply.gather.stops and reqreply.no_responders. The Result and error are
// gather.Gather's, unchanged (on a server without header support, a gather
// without a gather.Header goes without the trace context); a gather refused before anything is sent (bad
// subject or options) makes no span. With tracing and metrics off it is
// gather.Gather(ctx, v, subject, data, opts...) and nothing else.
func (t *Telemetry) Gather(ctx context.Context, v gather.Variant, subject string, data []byte, opts ...gather.Option) (gather.Result, error) {
	if ctx == nil || (!t.tracing(ctx) && !t.m.on(ctx)) {
		return gather.Gather(ctx, v, subject, data, opts...)
	}
	s, err := t.stream(ctx, v, subject, data, opts)
	if err != nil {
		return gather.Result{}, err
	}
	return gather.Collect(s)
}

// Variant returns v with every gather made through its Stream in a span, and
// measured, as Telemetry.Gather describes; its Name is v's. With tracing and
// metrics off its Stream is v's. For the collect-all form prefer
// Telemetry.Gather: gather.Gather on the wrapped Variant takes the Stream
// path, which costs an Inbox or a Mux gather an allocation or two more than
// their own.
func (t *Telemetry) Variant(v gather.Variant) gather.Variant { return variant{t: t, v: v} }

type variant struct {
	t *Telemetry
	v gather.Variant
}

func (w variant) Name() string { return w.v.Name() }

func (w variant) Stream(ctx context.Context, subject string, data []byte, opts ...gather.Option) (*gather.Stream, error) {
	if ctx == nil || (!w.t.tracing(ctx) && !w.t.m.on(ctx)) {
		return w.v.Stream(ctx, subject, data, opts...)
	}
	return w.t.stream(ctx, w.v, subject, data, opts)
}

// stream makes v's Stream with the trace context's header added, wrapped in
// one that runs the span around it.
func (t *Telemetry) stream(ctx context.Context, v gather.Variant, subject string, data []byte, opts []gather.Option) (*gather.Stream, error) {
	tracing, metrics := t.tracing(ctx), t.m.on(ctx)
	var h nats.Header
	var own []gather.Option
	if tracing {
		// The variant keeps the map the Header option gives it, and
		// publishes it when ranged: the run below writes the span's
		// context into it before that.
		h = nats.Header{}
		for k, vs := range gather.HeaderOf(opts...) {
			h[k] = vs
		}
		// A placeholder of traceparent's size, for the checks of size and keys
		// made now, unless the caller's headers have one.
		if _, ok := h[traceparent]; !ok {
			h[traceparent] = []string{placeholder}
		}
		// A new slice: the caller's stays its own (and on its stack, in the
		// off path of Gather).
		own = append(append(make([]gather.Option, 0, len(opts)+1), opts...), gather.Header(h))
	} else {
		own = slices.Clone(opts)
	}
	inner, err := v.Stream(ctx, subject, data, own...)
	if tracing && errors.Is(err, nats.ErrHeadersNotSupported) && len(gather.HeaderOf(opts...)) == 0 {
		// A server without header support takes no trace context: the
		// gather goes without one rather than fail.
		h = nil
		inner, err = v.Stream(ctx, subject, data, slices.Clone(opts)...)
	}
	if err != nil {
		return nil, err
	}
	if tracing && len(h[traceparent]) == 1 && h[traceparent][0] == placeholder {
		delete(h, traceparent)
	}
	return gather.NewStream(func(yield func(gather.Reply) bool) (res gather.Result, err error) {
		var start time.Time
		if metrics {
			start = time.Now()
		}
		var span trace.Span
		recording := false
		if tracing {
			var sctx context.Context
			sctx, span = t.tracer.Start(ctx, "gather "+subject, trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(KeySystem.String("nats"), KeyDestination.String(subject),
					KeyOperationType.String("send"), KeyOperationName.String("gather"),
					KeyBodySize.Int(len(data)), KeyVariant.String(v.Name())))
			if h != nil {
				t.Inject(sctx, h)
			}
			recording = span.IsRecording()
			defer func() {
				// Also when the consumer's loop panics.
				if recording {
					span.SetAttributes(KeyStopReason.String(res.Reason.String()),
						KeyReplies.Int(res.Count), KeyDropped.Int(res.Dropped),
						KeySkipped.Int(res.Skipped), KeyUnread.Int(res.Unread))
				}
				if err != nil {
					span.SetStatus(codes.Error, err.Error())
					span.SetAttributes(KeyErrorType.String(ErrorType(err)))
				}
				span.End()
			}()
		}
		for r := range inner.Replies() {
			if recording {
				// At the time it is handed out; its offset is the gather's own.
				span.AddEvent("reply", trace.WithAttributes(
					KeyResponder.String(r.Responder), KeyOffset.Int64(r.At.Microseconds())))
			}
			if !yield(r) {
				break
			}
		}
		res, err = inner.Result()
		if metrics {
			t.m.operation(ctx, "gather", start, err)
			t.m.replies.Record(ctx, int64(res.Count), t.m.nats)
			t.m.stops.Add(ctx, 1, t.m.stop(res.Reason))
		}
		return res, err
	}), nil
}

// traceparent is the W3C trace context header; placeholder is a value of
// its size, which a gather's request holds while its size is checked.
const (
	traceparent = "traceparent"
	placeholder = "00-00000000000000000000000000000000-0000000000000000-00"
)

// Gather is Default().Gather.
func Gather(ctx context.Context, v gather.Variant, subject string, data []byte, opts ...gather.Option) (gather.Result, error) {
	return Default().Gather(ctx, v, subject, data, opts...)
}

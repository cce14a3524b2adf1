// Hedged requests and admission control: a hedge.Observer that makes a span
// per request and a child span per copy, and counts hedges, retries and
// admission leaves.

package otelnats

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"reqreply/hedge"
)

// HedgeObserver returns the hedge.Observer to give hedge.NewClient
// (hedge.WithObserver): each Client.Request gets a span "hedged request
// <subject>" (messaging.operation.name "hedged request"), and each copy it
// sends a child span "send <subject>" (client; reqreply.hedge.copy, .kind
// first, hedge or retry, and at the request's end .won), whose trace
// context the copy carries in its headers, so the responder's span is that
// copy's child. The request's span has error status and error.type when it
// fails. It records messaging.client.operation.duration, reqreply.hedge.sent,
// .won and .wasted, reqreply.retries (those three at the request's end, for
// the copies that left: a copy whose publish failed is not counted, as
// hedge.ClientStats does not count it, and its span has the publish's
// error) and reqreply.no_responders. With
// tracing and metrics off its Start returns nil, and the client calls
// nothing more.
func (t *Telemetry) HedgeObserver() hedge.Observer { return hedgeObserver{t} }

type hedgeObserver struct{ t *Telemetry }

// hedgeCall is one request's observation.
type hedgeCall struct {
	t       *Telemetry
	ctx     context.Context // the request's span's context
	subject string
	span    trace.Span // nil when not tracing
	copies  []trace.Span
	kinds   []hedge.CopyKind
	unsent  []bool // copies whose publish failed
	metrics bool
	start   time.Time
	metctx  context.Context
}

func (o hedgeObserver) Start(ctx context.Context, subject string) hedge.CallObserver {
	t := o.t
	tracing, metrics := t.tracing(ctx), t.m.on(ctx)
	if !tracing && !metrics {
		return nil
	}
	c := &hedgeCall{t: t, ctx: ctx, metctx: ctx, subject: subject, metrics: metrics}
	if metrics {
		c.start = time.Now()
	}
	if tracing {
		c.ctx, c.span = t.tracer.Start(ctx, "hedged request "+subject, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(KeySystem.String("nats"), KeyDestination.String(subject),
				KeyOperationType.String("send"), KeyOperationName.String("hedged request")))
	}
	return c
}

func (c *hedgeCall) Copy(msg *nats.Msg, cp int, kind hedge.CopyKind) {
	for len(c.kinds) <= cp {
		c.kinds = append(c.kinds, kind)
		c.copies = append(c.copies, nil)
		c.unsent = append(c.unsent, false)
	}
	c.kinds[cp] = kind
	if c.span == nil {
		return
	}
	ctx, span := c.t.tracer.Start(c.ctx, "send "+c.subject, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(KeySystem.String("nats"), KeyDestination.String(c.subject),
			KeyOperationType.String("send"), KeyOperationName.String("send"),
			KeyBodySize.Int(len(msg.Data)), KeyCopy.Int(cp), KeyCopyKind.String(kind.String())))
	c.copies[cp] = span
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	c.t.Inject(ctx, msg.Header)
}

// Unsent ends copy cp's span with the publish's error; the copy is not
// counted as sent.
func (c *hedgeCall) Unsent(cp int, err error) {
	if cp < 0 || cp >= len(c.unsent) {
		return
	}
	c.unsent[cp] = true
	if s := c.copies[cp]; s != nil {
		c.copies[cp] = nil
		s.SetAttributes(KeyWon.Bool(false))
		s.SetStatus(codes.Error, err.Error())
		s.SetAttributes(KeyErrorType.String(ErrorType(err)))
		s.End()
	}
}

func (c *hedgeCall) End(won int, err error) {
	if c.metrics {
		c.t.m.operation(c.metctx, "hedged request", c.start, err)
		// The copies that left, counted now: a publish that failed
		// (Unsent) sent nothing.
		for cp, kind := range c.kinds {
			if c.unsent[cp] {
				continue
			}
			switch kind {
			case hedge.CopyHedge:
				c.t.m.hedgesSent.Add(c.metctx, 1, c.t.m.nats)
			case hedge.CopyRetry:
				c.t.m.retries.Add(c.metctx, 1, c.t.m.nats)
				continue
			default:
				continue
			}
			if cp == won {
				c.t.m.hedgesWon.Add(c.metctx, 1, c.t.m.nats)
			} else {
				c.t.m.hedgesWasted.Add(c.metctx, 1, c.t.m.nats)
			}
		}
	}
	if c.span == nil {
		return
	}
	for cp, s := range c.copies {
		if s != nil {
			s.SetAttributes(KeyWon.Bool(cp == won))
			s.End()
		}
	}
	if err != nil {
		c.span.SetStatus(codes.Error, err.Error())
		c.span.SetAttributes(KeyErrorType.String(ErrorType(err)))
	}
	c.span.End()
}

// ObserveAdmission counts a's leaves of its queue group in
// reqreply.admission.leaves (hedge.Admission.Observe; call it before
// a.Join). Nothing is recorded while the metrics are off.
func (t *Telemetry) ObserveAdmission(a *hedge.Admission) {
	a.Observe(func(leave bool) {
		ctx := context.Background()
		if leave && t.m.leaves.Enabled(ctx) {
			t.m.leaves.Add(ctx, 1, t.m.nats)
		}
	})
}

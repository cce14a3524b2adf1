// What a Variant outside this package builds on: a checked request with its
// options resolved, the stop rules, and a Stream made from a run function.
// The natsext adapter (natsextgather) is one such Variant.

package gather

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
)

// NewStream returns a Stream whose Replies call run once, with the
// consumer's yield, and whose Result is what run returns. run publishes the
// request and yields the replies until a stop condition; it must release
// everything it subscribed on every way out, also when yield panics. A
// Variant's Stream method checks its arguments first (Prepare), then
// returns NewStream(run).
func NewStream(run func(yield func(Reply) bool) (Result, error)) *Stream {
	return newStream(run)
}

// Prepared is one gather's request checked and its options resolved, as
// every Variant of this package sees them, for a Variant outside it.
type Prepared struct {
	c       config
	subject string
	data    []byte
}

// Prepare checks subject, opts and data for a gather on nc as every Variant
// does before anything is subscribed or published: errors wrap
// nats.ErrInvalidContext (nil ctx), nats.ErrInvalidArg (nil nc, a bad
// option), nats.ErrBadSubject, nats.ErrBadHeaderMsg,
// nats.ErrHeadersNotSupported, nats.ErrConnectionClosed,
// nats.ErrConnectionDraining, nats.ErrMaxPayload, or ctx's error.
func Prepare(ctx context.Context, nc *nats.Conn, subject string, data []byte, opts ...Option) (*Prepared, error) {
	p := &Prepared{subject: subject, data: data}
	if err := p.c.resolve(ctx, nc, subject, data, opts); err != nil {
		return nil, err
	}
	return p, nil
}

// Header is the request's headers (the Header option), nil without it.
func (p *Prepared) Header() nats.Header { return p.c.header }

// Stall is the Stall gap, 0 without it.
func (p *Prepared) Stall() time.Duration { return p.c.stall }

// AdaptiveStallSet reports whether the AdaptiveStall option was given: a
// Variant whose stall gap is fixed when the request goes out refuses the
// gather (nats.ErrInvalidArg).
func (p *Prepared) AdaptiveStallSet() bool { return p.c.margin > 0 }

// PendingLimitsSet reports whether the PendingLimits option was given: a
// Variant that cannot apply it refuses the gather (nats.ErrInvalidArg).
func (p *Prepared) PendingLimitsSet() bool { return p.c.pendingSet }

// Begin is the start of a run, when its Stream is ranged: the time the
// request goes out and the deadline counted from it (the sooner of ctx's
// and start plus Timeout, DefaultTimeout without either). The error is
// ctx's if it has already ended: then nothing may be sent (see NotSent).
func (p *Prepared) Begin(ctx context.Context) (start, deadline time.Time, err error) {
	return begin(ctx, &p.c)
}

// Publishable returns the error nats.go's publish of the request on nc
// would return, as far as it can be known before sending (headers the
// server does not support, a closed connection or one that only flushes,
// payload and headers over the max payload), for a Variant that must not
// subscribe anything for a request that cannot go out.
func (p *Prepared) Publishable(nc *nats.Conn) error {
	return publishable(nc, p.subject, p.data, p.c.header)
}

// Take applies the stop rules to m, a message the gather received, in the
// order every Variant applies them: a cancel of ctx (the caller's context)
// or the deadline ends the gather before m is handed out (counted in
// res.Skipped); a no-responders status ends it (StopNoResponders,
// nats.ErrNoResponders); a sentinel ends it normally; anything else is a
// reply, counted in res.Count and yielded as a Reply, and may be the
// consumer's last (StopCaller), complete Expect's set (StopExpected),
// satisfy StopWhen (StopCondition) or reach MaxReplies (StopMax). stop says
// whether the gather ends; reason and err are then what End takes.
func (p *Prepared) Take(ctx context.Context, res *Result, m *nats.Msg, start, deadline time.Time, yield func(Reply) bool) (reason StopReason, stop bool, err error) {
	return p.c.take(ctx, res, m, start, deadline, yield)
}

// End completes res for a gather that stopped now for reason, with err (nil
// for a normal end), as every Variant reports it: the reason and the time
// since start are set, dropped replies make the error wrap
// nats.ErrSlowConsumer, Missing and Repeated are set (Expect), and an
// error is wrapped with the subject, the reason and the count.
func (p *Prepared) End(res Result, reason StopReason, start time.Time, err error) (Result, error) {
	return p.c.result(res, reason, start, p.subject, err)
}

// NotSent is the Result and error of a gather that ended before its request
// was published, at step ("subscribe", "publish", ...), with err: a
// deadline that came first is StopDeadline without an error (every
// responder Expect names is Missing), a cancel
// StopCancelled, a closed or draining connection StopClosed, anything else
// StopFailed.
func (p *Prepared) NotSent(step string, start, deadline time.Time, err error) (Result, error) {
	return notSent(&p.c, p.subject, step, start, deadline, err)
}

// HeaderOf returns the request headers opts would send: the map the last
// Header option gives, nil without one (opts are not otherwise checked). A
// wrapper that adds headers of its own to a gather (a trace context) starts
// from it, and passes the result as a Header option after opts.
func HeaderOf(opts ...Option) nats.Header {
	var c config
	for _, opt := range opts {
		if opt != nil {
			_ = opt(&c)
		}
	}
	return c.header
}

// The collect-all and streaming forms shared by every variant, and the one
// collect loop the inbox and shared variants run to apply the stop conditions.

package gather

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Variant is one way to publish a request and gather its replies: Inbox,
// *Mux (shared) or Natsext. All three stop on the same conditions and report
// the same Result, which is what the conformance tests check.
type Variant interface {
	// Name is the variant's flag value: "inbox", "shared" or "natsext".
	Name() string
	// Stream checks subject and opts and returns a Stream. Nothing is
	// subscribed or published until the Stream's Replies are ranged, so a
	// Stream that is never ranged holds nothing.
	Stream(ctx context.Context, subject string, data []byte, opts ...Option) (*Stream, error)
}

// Stream is one request whose replies are yielded as they arrive. Range over
// Replies once, then read Result. Breaking out of the loop ends the gather
// (StopCaller) and releases its subscription or token at once.
type Stream struct {
	run    func(yield func(Reply) bool) (Result, error)
	ranged atomic.Bool
	done   chan struct{} // closed once run has returned
	result Result
	err    error
}

func newStream(run func(yield func(Reply) bool) (Result, error)) *Stream {
	return &Stream{run: run, done: make(chan struct{})}
}

// Replies publishes the request and yields each reply as it arrives, until a
// stop condition. It may be ranged once; a second range, also from another
// goroutine, yields nothing and sends nothing.
func (s *Stream) Replies() iter.Seq[Reply] {
	return func(yield func(Reply) bool) {
		if !s.ranged.CompareAndSwap(false, true) {
			return
		}
		defer close(s.done)
		s.result, s.err = s.run(yield)
	}
}

// Result returns why the gather stopped and its counts, once Replies has
// been ranged (before that: StopNone and no error; while another goroutine
// ranges it, Result waits for the end, so do not call it inside the range
// loop: it would wait for itself); the error is nil for the normal ends (deadline, max, stall,
// sentinel, caller) and otherwise wraps the cause: context.Canceled,
// nats.ErrConnectionClosed, nats.ErrNoResponders, nats.ErrSlowConsumer, or
// the publish error. Result.Replies is nil: the consumer had them.
func (s *Stream) Result() (Result, error) {
	if !s.ranged.Load() {
		return Result{Reason: StopNone}, nil
	}
	<-s.done
	return s.result, s.err
}

// Gather sends one request through v and collects every reply until a stop
// condition: the collect-all form of Stream. The replies received are
// returned also when the error is not nil (cancel, connection closed, no
// responders after some replies, dropped replies). Errors: the options'
// and subject's, refused before anything is sent (nats.ErrInvalidArg,
// nats.ErrBadSubject, nats.ErrBadHeaderMsg, nats.ErrMaxPayload), then
// those of Stream.Result.
func Gather(ctx context.Context, v Variant, subject string, data []byte, opts ...Option) (Result, error) {
	if f, ok := v.(fastGatherer); ok {
		// No Stream, no iterator: the options are resolved here, by a
		// static call, so that they and their closures stay on the
		// caller's stack; only the resolved config crosses the interface.
		c, err := resolved(ctx, f.conn(), subject, data, opts)
		if err != nil {
			return Result{}, err
		}
		return f.gatherResolved(ctx, c, subject, data)
	}
	// A copy, so that opts does not escape through the interface call: the
	// caller's option slice and closures then stay on its stack for the
	// shared variant.
	s, err := v.Stream(ctx, subject, data, slices.Clone(opts)...)
	if err != nil {
		return Result{}, err
	}
	return Collect(s)
}

// fastGatherer is a Variant that collects every reply without a Stream (the
// Mux): Gather resolves the options against conn and hands it the config.
type fastGatherer interface {
	Variant
	// conn is the connection the options are checked against (publishable).
	conn() *nats.Conn
	// gatherResolved is Gather with the options resolved into c.
	gatherResolved(ctx context.Context, c config, subject string, data []byte) (Result, error)
}

// Collect ranges s and returns its result with every reply in Replies.
func Collect(s *Stream) (Result, error) {
	var replies []Reply
	for r := range s.Replies() {
		replies = append(replies, r)
	}
	res, err := s.Result()
	res.Replies = replies
	return res, err
}

// inbox is what the Inbox and shared variants give the collect loop: one
// gather's view of the messages arriving on its reply subject.
type inbox interface {
	// next returns the next message, waiting until the time until at the
	// latest (then errWaitOver) or until the gather's context ends (then
	// its error). Other errors: nats.ErrConnectionClosed,
	// nats.ErrConnectionDraining, nats.ErrNoResponders (a status message
	// the transport recognised itself), nats.ErrSlowConsumer (replies were
	// dropped; more may follow).
	next(until time.Time) (*nats.Msg, error)
	// finish ends the gather's subscription or token and returns how many
	// replies were dropped for it and how many were left unread. It acts
	// once, before the Result is made (what later calls return is not
	// used), so a reply that comes later is not the gather's any more (the
	// Mux counts it in Late).
	finish() (dropped, unread int)
}

// collect is the loop the Inbox and shared variants share: it applies every
// stop condition to the messages their inbox delivers. start is just before
// the request was published; ctx is the caller's, for telling a
// cancellation from the deadline. The rules, in order, for each message:
// a cancel or the deadline, read from the context and the clock, ends the
// gather before the message is handed out (it is Skipped); a no-responders
// status ends it with nats.ErrNoResponders; a sentinel (never an error
// reply: config.isSentinel) ends it normally and is not a reply; anything else is a reply, yielded, and may reach
// MaxReplies. Between replies the wait is the stall gap, capped by the
// deadline.
func collect(ctx context.Context, c *config, start, deadline time.Time, in inbox, subject string, yield func(Reply) bool) (Result, error) {
	res := Result{Deadline: deadline.Sub(start)}
	until := deadline
	finish := func(reason StopReason, err error) (Result, error) {
		res.Dropped, res.Unread = in.finish()
		return c.result(res, reason, start, subject, err)
	}
	// A panic in the consumer's loop body (or its sentinel) passes through
	// here: release the subscription or token on that way out too. finish
	// runs once; later calls only return its counts.
	defer in.finish()
	for {
		m, err := in.next(until)
		switch {
		case err == nil:
		case errors.Is(err, nats.ErrSlowConsumer):
			// Replies were dropped; the count is reported at the end.
			continue
		case errors.Is(err, context.Canceled) || ctx.Err() == context.Canceled:
			return finish(StopCancelled, context.Canceled)
		case errors.Is(err, errWaitOver) && until.Before(deadline) && c.now().Before(deadline):
			return finish(StopStalled, nil)
		case errors.Is(err, errWaitOver), errors.Is(err, context.DeadlineExceeded):
			return finish(StopDeadline, nil)
		case errors.Is(err, nats.ErrNoResponders):
			return finish(StopNoResponders, nats.ErrNoResponders)
		case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrBadSubscription):
			return finish(StopClosed, err)
		default:
			return finish(StopFailed, err)
		}

		if reason, stop, err := c.take(ctx, &res, m, start, deadline, yield); stop {
			return finish(reason, err)
		}
		if gap := c.gap(); gap > 0 {
			until = c.now().Add(gap)
			if until.After(deadline) {
				until = deadline
			}
		}
	}
}

// take applies the stop rules to m, a message the gather has taken, in
// order: a cancel or the deadline, read from ctx (the caller's) and the
// clock, ends the gather before m is handed out (Skipped); a no-responders
// status ends it with nats.ErrNoResponders; a sentinel (never an error
// reply: config.isSentinel) ends it normally and is not a reply; anything
// else is a reply, counted and yielded, and may complete Expect's set,
// satisfy StopWhen or reach MaxReplies, in that order. stop says
// whether the gather ends, reason and err why.
func (c *config) take(ctx context.Context, res *Result, m *nats.Msg, start, deadline time.Time, yield func(Reply) bool) (reason StopReason, stop bool, err error) {
	// The clock, not another goroutine's timing, says whether the
	// gather is still on: a message taken after a cancel or the
	// deadline is not handed out.
	if ctx.Err() == context.Canceled {
		res.Skipped++
		return StopCancelled, true, context.Canceled
	}
	if !c.now().Before(deadline) {
		res.Skipped++
		return StopDeadline, true, nil
	}
	// A status message is not a reply; 503 means no responders.
	if isNoResponders(m) {
		res.Skipped++
		return StopNoResponders, true, nats.ErrNoResponders
	}
	if c.isSentinel(m) {
		res.Skipped++
		return StopSentinel, true, nil
	}
	res.Count++
	r := newReply(m, c.now().Sub(start))
	// The rules of Expect, StopWhen and AdaptiveStall note the reply
	// before it is handed out, so that a consumer's break on it still
	// counts it as an answer (Missing); their stop comes after the
	// consumer's.
	var rule StopReason
	var ruled bool
	if c.rules != nil {
		rule, ruled = c.observe(r)
	}
	if !yield(r) {
		return StopCaller, true, nil
	}
	if ruled {
		return rule, true, nil
	}
	if c.max > 0 && res.Count >= c.max {
		return StopMax, true, nil
	}
	return StopNone, false, nil
}

// result completes res for a gather that stopped for reason now, with err
// (nil for a normal end): Missing and Repeated from Expect, then result.
func (c *config) result(res Result, reason StopReason, start time.Time, subject string, err error) (Result, error) {
	c.account(&res)
	return result(res, reason, start, c.now(), subject, err)
}

// result completes res for a gather that stopped for reason at now, with err (nil
// for a normal end). Dropped replies make the error wrap
// nats.ErrSlowConsumer, whatever else ended the gather.
func result(res Result, reason StopReason, start, now time.Time, subject string, err error) (Result, error) {
	res.Reason = reason
	res.Elapsed = now.Sub(start)
	switch {
	case res.Dropped > 0 && err == nil:
		err = fmt.Errorf("%d replies dropped, the consumer fell behind: %w", res.Dropped, nats.ErrSlowConsumer)
	case res.Dropped > 0 && !errors.Is(err, nats.ErrSlowConsumer):
		err = fmt.Errorf("%w; and %d replies dropped, the consumer fell behind: %w", err, res.Dropped, nats.ErrSlowConsumer)
	}
	if err != nil {
		err = fmt.Errorf("gather %q: %s after %d replies: %w", subject, reason, res.Count, err)
	}
	return res, err
}

// notSent is the Result and error of a gather with config c that ended
// before its request was published: at step ("subscribe", "flush",
// "publish"), with err. A deadline or cancel that comes first ends it as it
// would have ended later (StopDeadline with no error, and every responder
// Expect names Missing; StopCancelled); a closed or draining connection is
// StopClosed; anything else StopFailed.
func notSent(c *config, subject, step string, start, deadline time.Time, err error) (Result, error) {
	res := Result{Reason: StopFailed, Elapsed: time.Since(start), Deadline: deadline.Sub(start)}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		// No error says why nobody answered: Missing does.
		res.Reason = StopDeadline
		c.account(&res)
		return res, nil
	case errors.Is(err, context.Canceled):
		res.Reason = StopCancelled
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrBadSubscription):
		res.Reason = StopClosed
	}
	return res, fmt.Errorf("gather %q: %s, not sent: %s: %w", subject, res.Reason, step, err)
}

// begin is the start of every variant's run, when its Stream is ranged: the
// time the request goes out and the deadline counted from it. The error is
// the caller's context's, if it has already ended: then nothing is sent.
func begin(ctx context.Context, c *config) (start, deadline time.Time, err error) {
	start = time.Now()
	return start, c.deadline(ctx, start), ctx.Err()
}

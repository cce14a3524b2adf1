// Deadline propagation: the request carries when its caller stops waiting,
// as an absolute time and as a relative budget, and the responder's
// middleware hands its handler a context with that deadline, skipping work
// that nobody will take.

package hedge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// DeadlineHeader is the header a request carries its absolute deadline in,
// as an RFC 3339 time with nanoseconds in UTC (time.RFC3339Nano), so `nats
// sub` shows it readably: the moment the caller stops waiting for this copy
// of the request.
//
// The idea is gRPC's deadline propagation (grpc.io/docs/guides/deadlines)
// and Go's context deadlines carried across a process boundary. An absolute
// time assumes the caller's and the responder's clocks agree to well within
// the deadline (NTP on one network: well under a millisecond); TimeoutHeader
// carries the same deadline as a relative budget, which needs no agreement.
// DeadlineAt says which wins.
const DeadlineHeader = "Request-Deadline"

// TimeoutHeader is the header a request carries its relative budget in, in
// gRPC's grpc-timeout format: at most 8 digits, then a unit (H hours, M
// minutes, S seconds, m milliseconds, u microseconds, n nanoseconds), as in
// "250m". It is the time left when the request was sent, rounded up to the
// unit; "0n" when none was left. The responder counts it from the moment it
// reads it, so the two clocks need not agree, but the time the request spent
// in flight and queued before its handler ran is not counted.
const TimeoutHeader = "Request-Timeout"

// The codes of the error reply (micro.ErrorCodeHeader) the deadline
// middleware (DeadlineHandler, DeadlineMicroHandler) sends instead of
// running the handler.
const (
	// ExpiredCode: the request's deadline had passed when its handler was
	// to run: nobody waits for the answer (HTTP's 504, gRPC's
	// DEADLINE_EXCEEDED).
	ExpiredCode = "504"
	// BadDeadlineCode: a deadline header did not parse (ErrBadDeadline).
	BadDeadlineCode = "400"
)

// ErrBadDeadline is wrapped by the errors of DeadlineAt and DeadlineOf for a
// request whose DeadlineHeader or TimeoutHeader does not parse.
var ErrBadDeadline = errors.New("malformed deadline header")

// maxTimeout is the largest value TimeoutHeader's 8 digits hold.
const maxTimeout = 99_999_999

// timeoutUnits are TimeoutHeader's units, finest first.
var timeoutUnits = []struct {
	unit time.Duration
	name byte
}{
	{time.Nanosecond, 'n'}, {time.Microsecond, 'u'}, {time.Millisecond, 'm'},
	{time.Second, 'S'}, {time.Minute, 'M'}, {time.Hour, 'H'},
}

// SetDeadline writes deadline into msg's DeadlineHeader only (replacing it
// under every spelling), creating the header map if needed: the absolute deadline alone, as the Client's
// Policy.Propagate sends it (SetBudget writes both headers). NATS carries
// headers to the responder unchanged (servers and clients since 2.2; a
// connection without header support fails the publish with
// nats.ErrHeadersNotSupported).
func SetDeadline(msg *nats.Msg, deadline time.Time) {
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	replaceHeader(msg.Header, DeadlineHeader, deadline.UTC().Format(time.RFC3339Nano))
}

// replaceHeader removes name from h under every spelling (DeadlineAt reads
// them all), then sets it to value unless value is "".
func replaceHeader(h nats.Header, name, value string) {
	for k := range h {
		if strings.EqualFold(k, name) {
			delete(h, k)
		}
	}
	if value != "" {
		h.Set(name, value)
	}
}

// SetBudget writes both headers into msg, creating the header map if
// needed: deadline into DeadlineHeader and what is left of it at now,
// deadline.Sub(now), into TimeoutHeader ("0n" if nothing is left).
func SetBudget(msg *nats.Msg, deadline, now time.Time) {
	SetDeadline(msg, deadline)
	replaceHeader(msg.Header, TimeoutHeader, formatTimeout(deadline.Sub(now)))
}

// SetContextDeadline passes what is left of ctx's deadline on to the
// request msg, for nc.RequestMsgWithContext(ctx, msg): a service that calls
// another with the context its DeadlineHandler gave it passes on its
// caller's budget, less the time it has spent. It writes both headers
// (SetBudget at time.Now()) and returns true; for a ctx without a deadline
// it removes both, under every spelling (a reused msg carries no stale
// deadline) and returns
// false. A nil msg is left alone (false): nc.RequestMsgWithContext refuses
// it with nats.ErrInvalidMsg.
func SetContextDeadline(ctx context.Context, msg *nats.Msg) bool {
	if msg == nil {
		return false
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		replaceHeader(msg.Header, DeadlineHeader, "")
		replaceHeader(msg.Header, TimeoutHeader, "")
		return false
	}
	SetBudget(msg, deadline, time.Now())
	return true
}

// DeadlineAt returns the deadline the headers h carry for a request its
// responder reads at now; ok is false when h carries neither header. With
// both, the earlier wins: the absolute DeadlineHeader, or now plus the
// relative TimeoutHeader.
//
// The earlier wins because each bounds the caller's wait, and each misses
// what the other catches: the budget misses the time the request spent in
// flight and queued behind other requests in the responder (a slow member's
// pending messages), which the absolute time counts; the absolute time is
// late by as much as the caller's clock runs ahead of the responder's, which
// the budget does not care about. What neither catches is a caller's clock
// that runs behind: its absolute deadline looks early, wins, and the
// request expires before its caller gives up (TestDeadlineClockSkew). With
// clocks that cannot be trusted, send only the budget (TimeoutHeader).
//
// Either header is read under any spelling of its name ("request-timeout",
// as an HTTP/2 or gRPC gateway writes it), and every value of it counts:
// the earliest of them all wins.
//
// A header that does not parse is an error wrapping ErrBadDeadline (and for
// DeadlineHeader the time package's *time.ParseError), so a responder can
// tell a malformed request from one without a deadline.
func DeadlineAt(h nats.Header, now time.Time) (deadline time.Time, ok bool, err error) {
	// Every spelling and every value of both headers: NATS header names
	// are case-sensitive, but a gateway from HTTP/2 or gRPC lowercases
	// them ("request-timeout"), and a hop may add its deadline instead of
	// setting it. The earliest wins, so that no spelling makes it later.
	for name, values := range h {
		absolute := strings.EqualFold(name, DeadlineHeader)
		if !absolute && !strings.EqualFold(name, TimeoutHeader) {
			continue
		}
		for _, v := range values {
			if v == "" {
				continue
			}
			var t time.Time
			if absolute {
				t, err = time.Parse(time.RFC3339Nano, v)
			} else {
				var d time.Duration
				d, err = parseTimeout(v)
				t = now.Add(d)
			}
			if err != nil {
				return time.Time{}, false, fmt.Errorf("%w: %s %q: %w", ErrBadDeadline, name, v, err)
			}
			if !ok || t.Before(deadline) {
				deadline, ok = t, true
			}
		}
	}
	return deadline, ok, nil
}

// DeadlineOf returns the deadline msg carries, read now (DeadlineAt at
// time.Now()); ok is false when it carries none.
func DeadlineOf(msg *nats.Msg) (deadline time.Time, ok bool, err error) {
	return DeadlineAt(msg.Header, time.Now())
}

// Expired reports whether msg carries a deadline (DeadlineAt, read at now)
// that has passed at now: its caller has stopped waiting, so work on it
// would be wasted. A request without a deadline, or with a malformed one,
// never expires: the responder does the work, as it would for a client
// that knows nothing of the headers.
func Expired(msg *nats.Msg, now time.Time) bool {
	d, ok, err := DeadlineAt(msg.Header, now)
	return err == nil && ok && !now.Before(d)
}

// DeadlineHandler is middleware for a plain handler that takes a context:
// it returns a nats.MsgHandler that reads the request's deadline
// (DeadlineAt, at the moment the handler is called) and calls h with a
// context that ends at that deadline, or when parent ends. A request without
// a deadline gets parent's deadline, if any. The context ends when h
// returns: work h hands to another goroutine must not keep it.
//
// h never runs for a request whose deadline has already passed: it gets an
// error reply with ExpiredCode (micro.ErrorCodeHeader) and a description
// (micro.ErrorHeader) saying how long ago its caller gave up; a request with
// a malformed header gets one with BadDeadlineCode. Either is dropped
// without a reply when the message has no reply subject.
func DeadlineHandler(parent context.Context, h func(context.Context, *nats.Msg)) nats.MsgHandler {
	return func(m *nats.Msg) {
		ctx, cancel, code, description := receive(parent, m.Header, time.Now())
		if code != "" {
			if m.Reply != "" {
				_ = m.RespondMsg(&nats.Msg{Header: nats.Header{
					micro.ErrorHeader: {description}, micro.ErrorCodeHeader: {code}}})
			}
			return
		}
		defer cancel()
		h(ctx, m)
	}
}

// DeadlineMicroHandler is DeadlineHandler for a micro endpoint: built on
// micro.ContextHandler(parent, ...), it calls h with a context that ends at
// the request's deadline, and answers a request already expired (or with a
// malformed header) with req.Error(ExpiredCode or BadDeadlineCode, ...),
// which micro counts in the endpoint's errors, without running h.
func DeadlineMicroHandler(parent context.Context, h func(context.Context, micro.Request)) micro.Handler {
	return micro.ContextHandler(parent, func(parent context.Context, req micro.Request) {
		ctx, cancel, code, description := receive(parent, nats.Header(req.Headers()), time.Now())
		if code != "" {
			_ = req.Error(code, description, nil)
			return
		}
		defer cancel()
		h(ctx, req)
	})
}

// receive is the middleware's one decision, for a request with headers h
// read at now: a context for its handler and the cancel to call when the
// handler returns, or the code and description of the error reply that
// replaces the handler.
func receive(parent context.Context, h nats.Header, now time.Time) (ctx context.Context, cancel context.CancelFunc, code, description string) {
	deadline, ok, err := DeadlineAt(h, now)
	switch {
	case err != nil:
		return nil, nil, BadDeadlineCode, err.Error()
	case !ok:
		ctx, cancel = context.WithCancel(parent)
		return ctx, cancel, "", ""
	case !now.Before(deadline):
		return nil, nil, ExpiredCode, fmt.Sprintf("deadline exceeded: the caller stopped waiting %v ago", now.Sub(deadline))
	}
	ctx, cancel = context.WithDeadline(parent, deadline)
	return ctx, cancel, "", ""
}

// formatTimeout writes d in TimeoutHeader's format: the finest unit whose
// value, rounded up, fits in 8 digits.
func formatTimeout(d time.Duration) string {
	if d <= 0 {
		return "0n"
	}
	for _, u := range timeoutUnits {
		v := d / u.unit
		if d%u.unit != 0 {
			v++ // rounded up
		}
		if v <= maxTimeout {
			return strconv.FormatInt(int64(v), 10) + string(u.name)
		}
	}
	return strconv.Itoa(maxTimeout) + "H"
}

// parseTimeout reads TimeoutHeader's format.
func parseTimeout(v string) (time.Duration, error) {
	if len(v) < 2 || len(v) > 9 {
		return 0, errors.New("want 1 to 8 digits and a unit")
	}
	n, err := strconv.ParseUint(v[:len(v)-1], 10, 64)
	if err != nil {
		return 0, errors.New("want 1 to 8 digits and a unit")
	}
	for _, u := range timeoutUnits {
		if u.name == v[len(v)-1] {
			if u.unit == time.Hour && n > uint64(maxDuration/time.Hour) {
				return maxDuration, nil
			}
			return time.Duration(n) * u.unit, nil
		}
	}
	return 0, fmt.Errorf("unit %q: want one of H M S m u n", v[len(v)-1])
}

// maxDuration is the longest time.Duration.
const maxDuration = time.Duration(1<<63 - 1)

// Deadline propagation: the request carries the absolute time its caller
// stops waiting, and the responder skips work that nobody will take.

package hedge

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// DeadlineHeader is the header a request carries its absolute deadline in,
// as an RFC 3339 time with nanoseconds in UTC (time.RFC3339Nano), so `nats
// sub` shows it readably: the moment the caller stops waiting for this copy
// of the request.
//
// The idea is gRPC's deadline propagation (grpc.io/docs/guides/deadlines)
// and Go's context deadlines carried across a process boundary. gRPC sends a
// relative timeout ("grpc-timeout") so that clocks need not agree; an
// absolute time, as here, is simpler to read and to compare but assumes the
// caller's and the responder's clocks agree to well within the deadline
// (NTP on one network: well under a millisecond). A skewed responder clock
// skips too much (ahead) or too little (behind).
const DeadlineHeader = "Request-Deadline"

// SetDeadline writes deadline into msg's DeadlineHeader, creating the header
// map if needed. NATS carries headers to the responder unchanged (servers
// and clients since 2.2; a connection without header support fails the
// publish with nats.ErrHeadersNotSupported).
func SetDeadline(msg *nats.Msg, deadline time.Time) {
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	msg.Header.Set(DeadlineHeader, deadline.UTC().Format(time.RFC3339Nano))
}

// DeadlineOf returns the deadline msg carries in DeadlineHeader; ok is false
// when it carries none. A header that does not parse as RFC 3339 is an error
// (wrapping the time package's *time.ParseError), so a responder can tell a
// malformed request from one without a deadline.
func DeadlineOf(msg *nats.Msg) (deadline time.Time, ok bool, err error) {
	v := msg.Header.Get(DeadlineHeader)
	if v == "" {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("header %s %q: %w", DeadlineHeader, v, err)
	}
	return t, true, nil
}

// Expired reports whether msg carries a deadline that has passed at now: its
// caller has stopped waiting, so work on it would be wasted. A request
// without a deadline, or with a malformed one, never expires: the responder
// does the work, as it would for a client that knows nothing of the header.
func Expired(msg *nats.Msg, now time.Time) bool {
	d, ok, err := DeadlineOf(msg)
	return err == nil && ok && !now.Before(d)
}

// The options of a gather (deadline, max replies, stall, sentinel, headers,
// pending limits), their checks, and what a gather returns: Reply, StopReason, Result.

package gather

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

// DefaultTimeout is the gather's deadline when neither the context has one
// nor Timeout is given: 1 s.
const DefaultTimeout = time.Second

// DefaultPendingMsgs and DefaultPendingBytes bound what a gather holds for
// a consumer that has fallen behind, before it drops replies (and reports
// them): 65,536 messages or 64 MiB, whichever comes first. The byte limit is
// nats.go's default for a subscription; see PendingLimits.
const (
	DefaultPendingMsgs  = 64 * 1024
	DefaultPendingBytes = 64 * 1024 * 1024
)

// MaxSubjectLen is the longest request subject a gather accepts: 3,968
// bytes. nats-server reads a publish's control line (subject, reply subject
// and sizes) up to 4,096 bytes by default and closes the connection on a
// longer one, which would end every other gather on it too.
const MaxSubjectLen = 4096 - 128

// ResponderHeader is the reply header in which a responder may name itself
// ("responder-3", as the multireply program's demo responders do);
// Reply.Responder reads it.
const ResponderHeader = "Responder"

// Option sets one stop condition or detail of a gather. Options are checked
// when the gather is made, before anything is published; a bad value is an
// error wrapping nats.ErrInvalidArg.
type Option func(*config) error

type config struct {
	timeout  time.Duration
	max      int
	stall    time.Duration
	sentinel func(*nats.Msg) bool
	margin   time.Duration // AdaptiveStall's margin; 0: off
	// rules are Expect's, StopWhen's and AdaptiveStall's, nil when none is
	// set: behind a pointer, so that a config stays small enough for a
	// variant's closure to hold by value (no allocation of its own).
	rules        *rules
	header       nats.Header
	pendingMsgs  int
	pendingBytes int
	pendingSet   bool
	now          func() time.Time // the clock of the collect loop: time.Now
}

// Timeout sets how long after the request the gather stops (the deadline),
// d > 0, counted from when the Stream is ranged and the request goes out. A
// context deadline that comes sooner wins. Without either, the deadline is
// DefaultTimeout (1 s). The first reply is awaited up to the deadline;
// reaching it is a normal end (StopDeadline, no error).
func Timeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("timeout %v must be > 0: %w", d, nats.ErrInvalidArg)
		}
		c.timeout = d
		return nil
	}
}

// MaxReplies stops the gather right after the nth reply (n ≥ 1), without
// waiting for an (n+1)th: a normal end (StopMax, no error). Use it whenever
// the number of responders is known; it is what lets a gather return as soon
// as the last reply is in instead of at the deadline. Sentinel and status
// messages do not count.
func MaxReplies(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("max replies %d must be ≥ 1: %w", n, nats.ErrInvalidArg)
		}
		c.max = n
		return nil
	}
}

// Stall stops the gather when, after the first reply, no further reply
// arrives within d (d > 0 and shorter than the time left to the deadline).
// The gap never extends past the deadline, and before the first reply only
// the deadline applies. A normal end (StopStalled, no error). It suits
// responders that answer at about the same time when their number is unknown.
// AdaptiveStall sets a gap that follows the arrivals instead; when the
// responders are known, Expect ends at the last answer without any gap.
func Stall(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("stall %v must be > 0: %w", d, nats.ErrInvalidArg)
		}
		c.stall = d
		return nil
	}
}

// AdaptiveStall is Stall with a gap that follows the replies: after each
// reply, the gather stops (StopStalled) when no further reply arrives
// within the longest arrival gap seen so far plus margin. The first gap is
// from the request to the first reply, so the allowed gap starts at about
// one round trip and the responders' work, plus margin, and only grows.
// As with Stall, before the first reply only the deadline applies and the
// gap never extends past the deadline. margin must be > 0 and shorter than
// the deadline, and the option cannot be combined with Stall; otherwise
// nats.ErrInvalidArg.
//
// natscli's "nats request --replies N" (N > 0) waits after each reply for
// the mean time from the request to the replies so far plus
// --reply-timeout (300 ms by default), not capped by its overall timeout,
// and stops at N; with --replies 0 it waits out the timeout. The longest
// gap is used here instead, so that the allowance never shrinks: a
// straggler seen once keeps the wait for the next. The natsext variant
// refuses it (natsext's stall is fixed when it is called):
// nats.ErrInvalidArg.
func AdaptiveStall(margin time.Duration) Option {
	return func(c *config) error {
		if margin <= 0 {
			return fmt.Errorf("adaptive stall margin %v must be > 0: %w", margin, nats.ErrInvalidArg)
		}
		c.margin = margin
		c.rule()
		return nil
	}
}

// Sentinel ends the gather at the first message for which isSentinel returns
// true; that message is not returned as a reply (StopSentinel, no error).
// With a nil isSentinel the rule is EmptySentinel: an empty payload without
// a service error ends it. Without this option an empty payload is an
// ordinary reply. No-responders status messages and error replies (micro's
// Nats-Service-Error or Nats-Service-Error-Code header) are handled before
// the sentinel and never reach it: an error reply is a counted reply with
// its Reply.ServiceError set, whatever isSentinel would say, in every
// variant (natsext's own sentinel is not used).
func Sentinel(isSentinel func(*nats.Msg) bool) Option {
	return func(c *config) error {
		if isSentinel == nil {
			isSentinel = EmptySentinel
		}
		c.sentinel = isSentinel
		return nil
	}
}

// EmptySentinel reports whether m is an end of stream: an empty payload and
// no service error header (micro.ErrorHeader, micro.ErrorCodeHeader). It is
// the default sentinel. natsext's DefaultSentinel (v0.1.4) looks at the
// payload alone, so a micro error reply, which has an empty payload, ends
// its gather as a sentinel and the error and the replies after it are
// lost. nats-server draws the same line for a stream export's responses:
// only a message with neither payload nor headers ends the stream there.
func EmptySentinel(m *nats.Msg) bool { return len(m.Data) == 0 && !isServiceError(m) }

// isServiceError reports whether m carries micro's error headers.
func isServiceError(m *nats.Msg) bool {
	return m.Header != nil && (m.Header.Get(micro.ErrorHeader) != "" || m.Header.Get(micro.ErrorCodeHeader) != "")
}

// isSentinel reports whether m ends a gather configured by c as its
// sentinel: never an error reply (see Sentinel).
func (c *config) isSentinel(m *nats.Msg) bool {
	return c.sentinel != nil && !isServiceError(m) && c.sentinel(m)
}

// Header sends h as the request's headers. The server must support headers,
// as every nats-server since 2.2 does unless no_header_support is set;
// otherwise the gather is refused before anything is sent, with an error
// wrapping nats.ErrHeadersNotSupported. Replies carry their own headers back
// in Reply.Header. A key must be printable ASCII without spaces or ':' (what
// nats.go accepts); otherwise the error wraps nats.ErrBadHeaderMsg.
func Header(h nats.Header) Option {
	return func(c *config) error {
		for k := range h {
			if !validHeaderKey(k) {
				return fmt.Errorf("header key %q: want printable ASCII without spaces or ':': %w", k, nats.ErrBadHeaderMsg)
			}
		}
		c.header = h
		return nil
	}
}

func validHeaderKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if b := k[i]; b < '!' || b > '~' || b == ':' {
			return false
		}
	}
	return true
}

// PendingLimits bounds what waits for the consumer of one gather: msgs
// replies (≥ 1) or bytes of payload and headers (≥ 1), whichever comes
// first; defaults DefaultPendingMsgs and DefaultPendingBytes. Replies beyond
// it are dropped, counted in Result.Dropped, and the gather's error wraps
// nats.ErrSlowConsumer, however the gather ended (also with a cancel or a
// close, beside their own error): a burst is reported, never silently
// truncated. The
// natsext variant has no such setting and rejects this option.
func PendingLimits(msgs, bytes int) Option {
	return func(c *config) error {
		if msgs <= 0 || bytes <= 0 {
			return fmt.Errorf("pending limits %d messages, %d bytes must be ≥ 1: %w", msgs, bytes, nats.ErrInvalidArg)
		}
		c.pendingMsgs, c.pendingBytes, c.pendingSet = msgs, bytes, true
		return nil
	}
}

// newConfig applies opts and checks everything a gather needs before it
// publishes: the subject, that the server takes headers if there are any,
// and that payload and headers fit the server's max payload. The deadline is
// fixed later, by deadline, when the request goes out.
func newConfig(ctx context.Context, nc *nats.Conn, subject string, data []byte, opts []Option) (*config, error) {
	c := new(config)
	if err := c.resolve(ctx, nc, subject, data, opts); err != nil {
		return nil, err
	}
	return c, nil
}

// resolve is newConfig into an existing config, which it overwrites: the
// shared variant resolves the options once into its pooled per-gather
// state, a plain value, so that the collect loop reads fields, not closures.
func (c *config) resolve(ctx context.Context, nc *nats.Conn, subject string, data []byte, opts []Option) error {
	if ctx == nil {
		return fmt.Errorf("gather %q: nil context: %w", subject, nats.ErrInvalidContext)
	}
	if nc == nil {
		return fmt.Errorf("gather %q: nil connection: %w (%w)", subject, nats.ErrInvalidArg, nats.ErrInvalidConnection)
	}
	if err := CheckSubject(subject); err != nil {
		return fmt.Errorf("gather: %w", err)
	}
	*c = config{pendingMsgs: DefaultPendingMsgs, pendingBytes: DefaultPendingBytes, now: time.Now}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(c); err != nil {
			return fmt.Errorf("gather %q: %w", subject, err)
		}
	}
	if err := publishable(nc, subject, data, c.header); err != nil {
		return err
	}
	if c.rules != nil && c.rules.expect != nil && !nc.HeadersSupported() {
		// No reply could name its responder: the gather would wait out
		// its deadline and call every expected responder missing.
		return fmt.Errorf("gather %q: Expect needs the Responder header, and the server does not support headers: %w",
			subject, nats.ErrHeadersNotSupported)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gather %q: not sent: %w", subject, err)
	}
	if c.stall > 0 && c.margin > 0 {
		return fmt.Errorf("gather %q: Stall and AdaptiveStall together: choose one: %w", subject, nats.ErrInvalidArg)
	}
	if c.stall > 0 || c.margin > 0 {
		// The stall must leave room before the deadline, as far as it can
		// be known now.
		room := c.timeout
		if room == 0 {
			room = DefaultTimeout
		}
		if d, ok := ctx.Deadline(); ok && (c.timeout == 0 || time.Until(d) < room) {
			room = time.Until(d)
		}
		if gap := max(c.stall, c.margin); gap >= room {
			return fmt.Errorf("gather %q: stall %v must be shorter than the deadline (%v away): %w",
				subject, gap, room.Round(time.Millisecond), nats.ErrInvalidArg)
		}
	}
	return nil
}

// publishable returns the error nats.go's publish would return for a
// request of data and h on nc, as far as it can be known before sending:
// headers on a server without header support (nats.ErrHeadersNotSupported),
// a closed connection (nats.ErrConnectionClosed), one that has drained its
// subscriptions and only flushes (nats.ErrConnectionDraining), payload and
// headers over the server's max payload (nats.ErrMaxPayload).
func publishable(nc *nats.Conn, subject string, data []byte, h nats.Header) error {
	size := len(data)
	if len(h) > 0 {
		if !nc.HeadersSupported() {
			return fmt.Errorf("gather %q: the server does not support headers (nats-server before 2.2, or no_header_support): %w",
				subject, nats.ErrHeadersNotSupported)
		}
		m := nats.Msg{Header: h}
		size += m.Size()
	}
	switch {
	case nc.IsClosed():
		return fmt.Errorf("gather %q: %w", subject, nats.ErrConnectionClosed)
	case nc.Status() == nats.DRAINING_PUBS:
		return fmt.Errorf("gather %q: %w", subject, nats.ErrConnectionDraining)
	}
	if max := nc.MaxPayload(); max > 0 && int64(size) > max {
		return fmt.Errorf("gather %q: payload and headers of %d bytes are over the server's max payload of %d bytes: %w",
			subject, size, max, nats.ErrMaxPayload)
	}
	return nil
}

// deadline is when a gather whose request goes out now stops at the latest:
// the sooner of the context's deadline and now plus the timeout.
func (c *config) deadline(ctx context.Context, now time.Time) time.Time {
	timeout := c.timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	deadline := now.Add(timeout)
	if d, ok := ctx.Deadline(); ok && (c.timeout == 0 || d.Before(deadline)) {
		deadline = d
	}
	return deadline
}

// CheckSubject returns an error wrapping nats.ErrBadSubject unless subject
// is one a request can be published to: not empty, at most MaxSubjectLen
// bytes, no empty tokens, no wildcard tokens ('*', '>'), no white space.
func CheckSubject(subject string) error {
	if subject == "" {
		return fmt.Errorf("empty subject: %w", nats.ErrBadSubject)
	}
	if len(subject) > MaxSubjectLen {
		return fmt.Errorf("subject of %d bytes is longer than %d: %w", len(subject), MaxSubjectLen, nats.ErrBadSubject)
	}
	if strings.ContainsAny(subject, " \t\r\n") {
		return fmt.Errorf("subject %q has white space: %w", subject, nats.ErrBadSubject)
	}
	// A loop over the bytes rather than an iterator over the tokens: every
	// gather checks its subject, so this is on its hot path. tok is where
	// the current token began.
	tok := 0
	for i := 0; i <= len(subject); i++ {
		if i < len(subject) && subject[i] != '.' {
			continue
		}
		switch subject[tok:i] {
		case "":
			return fmt.Errorf("subject %q has an empty token: %w", subject, nats.ErrBadSubject)
		case "*", ">":
			return fmt.Errorf("subject %q has a wildcard; a request goes to one literal subject: %w", subject, nats.ErrBadSubject)
		}
		tok = i + 1
	}
	return nil
}

// StopReason says why a gather stopped.
type StopReason int

// The reasons a gather stops. StopDeadline, StopMax, StopStalled,
// StopSentinel, StopCaller, StopExpected and StopCondition are normal ends;
// the others come with an error.
const (
	// StopNone: the stream has not been ranged yet (its Result has no
	// error), or the gather was refused before it started (its error says
	// why).
	StopNone StopReason = iota
	// StopDeadline: the deadline (Timeout or the context's) passed.
	StopDeadline
	// StopMax: MaxReplies replies arrived.
	StopMax
	// StopStalled: no reply within the Stall gap after the previous one.
	StopStalled
	// StopSentinel: a sentinel message arrived (see Sentinel).
	StopSentinel
	// StopCaller: the caller broke out of the range loop.
	StopCaller
	// StopNoResponders: a no-responders status (503) arrived: error
	// wrapping nats.ErrNoResponders.
	StopNoResponders
	// StopCancelled: the context was cancelled: error wrapping
	// context.Canceled.
	StopCancelled
	// StopClosed: the connection closed, or (inbox, natsext) its drain
	// took the subscription away, or the shared Mux closed: error wrapping
	// nats.ErrConnectionClosed, nats.ErrConnectionDraining or
	// nats.ErrBadSubscription (ErrMuxClosed).
	StopClosed
	// StopFailed: the inbox could not be made or the request not sent
	// (nats.ErrMaxPayload, nats.ErrPermissionViolation, ...).
	StopFailed
	// StopExpected: every responder named by Expect has answered.
	StopExpected
	// StopCondition: the StopWhen predicate returned true.
	StopCondition
)

var stopNames = [...]string{
	StopNone:         "not started",
	StopDeadline:     "deadline",
	StopMax:          "max reached",
	StopStalled:      "stalled",
	StopSentinel:     "sentinel",
	StopCaller:       "caller stopped",
	StopNoResponders: "no responders",
	StopCancelled:    "cancelled",
	StopClosed:       "connection closed",
	StopFailed:       "failed",
	StopExpected:     "all expected answered",
	StopCondition:    "condition met",
}

// String names the reason as the CLI prints it ("max reached", ...).
func (r StopReason) String() string {
	if r >= 0 && int(r) < len(stopNames) {
		return stopNames[r]
	}
	return "StopReason(" + strconv.Itoa(int(r)) + ")"
}

// Normal reports whether r ends a gather without an error.
func (r StopReason) Normal() bool {
	switch r {
	case StopDeadline, StopMax, StopStalled, StopSentinel, StopCaller, StopExpected, StopCondition:
		return true
	}
	return false
}

// Reply is one reply to a gather's request.
type Reply struct {
	// Msg is the message as received; Msg.Data is the payload.
	Msg *nats.Msg
	// At is when it arrived, measured from just before the request was
	// published.
	At time.Duration
	// Responder is the ResponderHeader value, "" if the responder set none.
	Responder string
	// ServiceError is set when the reply carries the micro framework's
	// error headers (Nats-Service-Error, Nats-Service-Error-Code); a reply
	// that reports an error is still a reply and still counts.
	ServiceError *ServiceError
}

// ServiceError is an error a responder reported in the headers the
// nats.go/micro framework uses: micro.ErrorHeader and micro.ErrorCodeHeader.
type ServiceError struct {
	// Code is the Nats-Service-Error-Code value, often an HTTP-like status.
	Code string
	// Description is the Nats-Service-Error value.
	Description string
}

// Error formats the service error as "service error 500: description".
func (e *ServiceError) Error() string {
	return "service error " + e.Code + ": " + e.Description
}

func newReply(m *nats.Msg, at time.Duration) Reply {
	r := Reply{Msg: m, At: at}
	if m.Header != nil {
		r.Responder = m.Header.Get(ResponderHeader)
		desc, code := m.Header.Get(micro.ErrorHeader), m.Header.Get(micro.ErrorCodeHeader)
		if desc != "" || code != "" {
			r.ServiceError = &ServiceError{Code: code, Description: desc}
		}
	}
	return r
}

// isNoResponders reports whether m is the server's no-responders status: no
// payload and the header "Status: 503". nats-server sends it to the reply
// subject of a request whose subject has no subscribers, to clients that
// announce headers and no_responders support (nats.go does).
func isNoResponders(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header != nil && m.Header.Get("Status") == "503"
}

// Result is the outcome of one gather.
type Result struct {
	// Replies in arrival order; nil for a Stream, whose consumer had them.
	Replies []Reply
	// Count is how many replies were delivered.
	Count int
	// Reason is why the gather stopped.
	Reason StopReason
	// Elapsed is from just before the request was published to the stop.
	Elapsed time.Duration
	// Deadline is how far after the request the deadline was.
	Deadline time.Duration
	// Dropped is how many replies were lost because the consumer fell
	// behind by more than the pending limit.
	Dropped int
	// Skipped is how many messages were taken but not handed out: the
	// sentinel, a no-responders status, or a reply taken when the deadline
	// had passed or the context was cancelled (0 or 1).
	Skipped int
	// Unread is how many replies had reached the gather but were still
	// waiting, unread, when it stopped (after MaxReplies, a sentinel, a
	// break, the deadline). The Mux counts them in Late too.
	Unread int
	// Missing names, in Expect's order, the expected responders that had
	// not answered when the gather stopped; nil when all had, without
	// Expect, and for a gather refused or not sent with an error (it says
	// why). A gather whose deadline passed before its request went out
	// (StopDeadline, no error) names them all.
	Missing []string
	// Repeated names, sorted, the responders (by ResponderHeader) that
	// answered more than once while the gather ran, expected or not; nil
	// without Expect.
	Repeated []string
}

// The conservation law of a gather: each message that reaches the gather
// (its subscription or its Mux token, while the gather runs) is exactly one
// of Count (handed to the consumer), Skipped (taken, not handed out),
// Dropped or Unread. The Mux also counts what reaches a token after its
// gather ended (Late), so that for a Mux nothing is counted twice or not at
// all (see Mux). For the inbox and natsext variants, a reply that reaches
// the client after the gather's subscription is gone is discarded by nats.go
// and counted by neither (only in nc.Stats().InMsgs). natsext does not say
// what it discarded: its Unread counts only the replies the wrapper itself
// discards after a stop while nc drains (see Natsext), and its Skipped only
// what the wrapper saw.

// errWaitOver is what a transport returns when the wait it was given ends
// without a message.
var errWaitOver = errors.New("wait over")

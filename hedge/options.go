// Options: what attaches to a Client from outside, the prompt permission
// denials (Checks, reqreply/denials provides them) and the clocks a test
// replaces, and what a caller may read of the client's state.

package hedge

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
)

// Checks makes the server's permission denials end a request within one
// round trip, instead of leaving it to wait out its deadline: nats-server
// reports a denied publish or subscribe only as an asynchronous error on
// the connection. reqreply/denials' ClientChecks is one; this package does
// not import it, so that its directory can be copied alone. Without Checks
// a Client subscribes and publishes plainly.
type Checks interface {
	// SubscribeChecked makes the client's inbox subscription with
	// subscribe and confirms it (a flush, bounded by ctx): an error
	// wrapping nats.ErrPermissionViolation if the server denied it.
	SubscribeChecked(ctx context.Context, nc *nats.Conn, subject, queue string, subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error)
	// Watch calls onDenied with the server's permissions violation, on
	// the connection's error handler goroutine, when it denies a publish
	// on nc to subject, until stop is called.
	Watch(nc *nats.Conn, subject string, onDenied func(error)) (stop func())
	// Rehook puts the denial dispatcher back in front of nc's error
	// handler, after the caller has set one of its own.
	Rehook(nc *nats.Conn)
}

// Option attaches something to a Client at NewClient.
type Option func(*Client)

// WithChecks gives the client prompt permission denials (Checks): a
// request to a denied subject fails within one round trip with an error
// wrapping nats.ErrPermissionViolation, and a denied inbox fails NewClient.
func WithChecks(ch Checks) Option { return func(c *Client) { c.checks = ch } }

// WithClock replaces the client's clock: now (time.Now) decides whether a
// reply came before the overall deadline, sleep (Sleep) waits between
// retries. nil keeps the default. For tests and simulations.
func WithClock(now func() time.Time, sleep func(context.Context, time.Duration) error) Option {
	return func(c *Client) {
		if now != nil {
			c.now = now
		}
		if sleep != nil {
			c.sleep = sleep
		}
	}
}

// WithHedgeTimer replaces time.After for the hedge delay: the hedge is
// sent when the returned channel has a value. For tests that decide
// themselves when the delay is over.
func WithHedgeTimer(after func(time.Duration) <-chan time.Time) Option {
	return func(c *Client) { c.hedgeAfter = after }
}

// CopyKind says why a Client sent a copy of a request.
type CopyKind int

// The kinds of copy a CallObserver sees.
const (
	// CopyFirst is the request's first copy.
	CopyFirst CopyKind = iota
	// CopyHedge is a hedge (Policy.Hedge): a further copy after the delay.
	CopyHedge
	// CopyRetry is the first copy of a retry (Policy.Retry), after a
	// no-responders status or an attempt's timeout and the backoff.
	CopyRetry
)

// String names the kind: "first", "hedge" or "retry".
func (k CopyKind) String() string {
	switch k {
	case CopyFirst:
		return "first"
	case CopyHedge:
		return "hedge"
	case CopyRetry:
		return "retry"
	}
	return "unknown"
}

// Observer watches a Client's requests from outside, for tracing and
// metrics (reqreply/otelnats is one; this package does not import it, so
// that its directory can be copied alone). Its methods run on the goroutine
// of the Client.Request they observe, so they must not block.
type Observer interface {
	// Start is called when Client.Request begins a call to subject, with
	// the request's context, once its arguments are accepted; the
	// CallObserver it returns (nil: none) sees that call's copies and its
	// end.
	Start(ctx context.Context, subject string) CallObserver
}

// CallObserver sees one request of a Client: every copy it sends, then its
// end, on the requesting goroutine.
type CallObserver interface {
	// Copy is called just before copy cp (0 for the first; every copy
	// has its own reply subject, <inbox>.<call>.<cp>) leaves, as kind:
	// msg is the copy, whose Header the observer may set (a trace
	// context; on a server without header support, a copy that had no
	// headers is sent without what the observer set). A publish that then
	// fails ends the request with its error, after Unsent.
	Copy(msg *nats.Msg, cp int, kind CopyKind)
	// Unsent is called when the publish of copy cp, seen by Copy, failed
	// with err (nats.ErrReconnectBufExceeded, nats.ErrConnectionClosed,
	// ...): the copy did not leave, and ClientStats does not count it.
	Unsent(cp int, err error)
	// End is called once, when the request returns: won is the number
	// of the copy whose reply the caller got, -1 for none; err is the
	// request's error (nil with a reply).
	End(won int, err error)
}

// WithObserver makes o see every request of the client (Observer): each
// copy before it leaves, and which one won. nil: none, and nothing is
// called.
func WithObserver(o Observer) Option { return func(c *Client) { c.observer = o } }

// SettleTimeout bounds Client.Settle when its context has no deadline: 5 s.
const SettleTimeout = 5 * time.Second

// subscribeChecked makes the client's inbox subscription with subscribe:
// through the Checks when the client has them, else plainly, then flushed.
func (c *Client) subscribeChecked(subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error) {
	if c.checks != nil {
		return c.checks.SubscribeChecked(context.Background(), c.nc, c.prefix+">", "", subscribe)
	}
	sub, err := subscribe()
	if err != nil {
		return nil, err
	}
	if err := c.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return sub, nil
}

// isNoResponders reports whether msg is the server's no-responders status:
// no payload and the header "Status: 503", which nats.go's own request
// calls turn into nats.ErrNoResponders but does not export a test for.
// (reqreply/respond.IsNoResponders is the same test; it is not imported, so
// that this directory can be copied alone.)
func isNoResponders(msg *nats.Msg) bool {
	return len(msg.Data) == 0 && msg.Header.Get("Status") == "503"
}

// Held is what a Client holds per request and per subject: Calls waiting
// for a reply, Watched subjects (denial watches of subjects not denied),
// Denied subjects kept (at most DeniedSubjects), WaitReplies Waiters. Once
// every request and wait has ended it is Denied alone.
type Held struct {
	Calls, Watched, Denied, Waiters int
}

// Held returns what the client holds now.
func (c *Client) Held() Held {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := Held{Calls: len(c.calls), Waiters: len(c.waiters)}
	for _, w := range c.watches {
		if w.denied != nil {
			h.Denied++
		} else {
			h.Watched++
		}
	}
	return h
}

// Inbox returns the client's inbox: every copy's reply subject is
// <inbox>.<call>.<copy>, under the one wildcard subscription <inbox>.>.
func (c *Client) Inbox() string { return c.prefix[:len(c.prefix)-1] }

// Conn returns the client's connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// Window returns the client's recent latencies, which an adaptive hedge
// reads.
func (c *Client) Window() *Window { return c.window }

// Context: prompt denials for nats.go's own request call. The caller keeps
// nc.RequestMsgWithContext; the context it passes ends as soon as the
// server denies the request.

package denials

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// Context returns a context derived from ctx that ends, with the denial as
// its cause (context.Cause), when the server's permissions deny a publish
// to subject on nc, or the subscription of nc's response mux: the one
// wildcard subscription (nc.NewRespInbox's prefix + "*") on which nats.go's
// Request, RequestWithContext and RequestMsgWithContext take their replies.
// Pass it to nc.RequestMsgWithContext (or RequestWithContext) for subject,
// and the request ends within one round trip of the denial, with
// context.Canceled, instead of waiting out ctx; Err turns that into the
// denial. Call stop when the request is over: it ends the watch (and the
// context). Until then, a second denial of the same subject on nc goes to
// the next watch of it, one violation to one watch (see Claimed); a denial
// of the response mux goes to every Context of nc, since every request
// shares it.
//
// nats.go subscribes its response mux once per connection, with its first
// request, and again after each reconnect: after a denied mux, every later
// request on nc would wait out its timeout. So the dispatcher keeps the
// latest mux denial on nc, watched for or not, and a Context for nc made
// after it, with no reconnect since, is ended at once, with that denial as
// its cause. Make a Context for the
// first request on a connection too: a mux denial that no Context watched
// for goes to nc's error handler only. Like Watch, it chains the
// dispatcher in front of nc's error handler if needed (Rehook).
//
// With nats.UseOldRequestStyle, nats.go makes an inbox per request instead
// of the mux, and Context does not see that inbox denied: use Request.
// The server's refusal of the reply subject itself (a reserved inbox
// prefix, such as $JS.API.>) names the one reply inbox, which nats.go does
// not expose: Request, with an inbox of its own, ends on that too.
func Context(ctx context.Context, nc *nats.Conn, subject string) (context.Context, context.CancelFunc) {
	st := hook(nc)
	mux := respMux(nc)
	wctx, cancel := context.WithCancelCause(ctx)
	stop := watchDenials(nc, func(err error) {
		d := deniedError{err: err}
		if kind, s, _, ok := parseViolation(err); ok && kind == denySubscribe && s == mux {
			d.hint = InboxHint
		}
		cancel(d)
	}, denialKey{kind: denyPublish, subject: subject}, denialKey{kind: denySubscribe, subject: mux})
	// Looked at after the watch is set, so that a mux denial is either
	// remembered already or handed to the watch.
	if err := st.muxDenied(nc, mux); err != nil {
		cancel(err)
	}
	return wctx, func() {
		stop()
		cancel(nil)
	}
}

// Err returns the denial that ended ctx (a context from Context), when
// err, the error of the request made with it, is ctx's ending; otherwise
// err as it is (a reply's nil, nats.ErrNoResponders, nats.ErrTimeout,
// nats.ErrConnectionClosed, the caller's own deadline or cancel). The
// denial wraps nats.ErrPermissionViolation and ErrDenied, and its text is
// the server's, which names the subject.
func Err(ctx context.Context, err error) error {
	if err == nil || !errors.Is(err, context.Canceled) {
		return err
	}
	if cause := context.Cause(ctx); errors.Is(cause, ErrDenied) {
		return cause
	}
	return err
}

// respMux returns the subject of nc's response mux: nc.NewRespInbox()
// without its last token, and "*".
func respMux(nc *nats.Conn) string {
	inbox := nc.NewRespInbox()
	return inbox[:strings.LastIndexByte(inbox, '.')+1] + "*"
}

// muxDenial is the denial of a connection's response mux, and the
// connection's reconnect count when it came.
type muxDenial struct {
	mu         sync.Mutex
	subject    string
	err        error
	reconnects uint64
}

// muxDenied returns the denial of nc's response mux subject, if one came
// and nc has not reconnected since (a reconnect subscribes it again).
func (st *hookState) muxDenied(nc *nats.Conn, subject string) error {
	st.mux.mu.Lock()
	defer st.mux.mu.Unlock()
	if st.mux.err == nil || st.mux.subject != subject || st.mux.reconnects != nc.Stats().Reconnects {
		return nil
	}
	return st.mux.err
}

// rememberMux records err as the denial of nc's response mux subject.
func (st *hookState) rememberMux(nc *nats.Conn, subject string, err error) {
	st.mux.mu.Lock()
	defer st.mux.mu.Unlock()
	st.mux.subject, st.mux.err, st.mux.reconnects = subject, err, nc.Stats().Reconnects
}

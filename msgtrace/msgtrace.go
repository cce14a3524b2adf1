// The trace of one request: a fresh inbox for the servers' reports, the
// header that asks for them, and their collection into a Tree.

package msgtrace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// The message-tracing headers of nats-server (ADR-41, nats-server 2.11 and
// later).
const (
	// DestHeader asks every server the message passes to publish its
	// Report to the subject it holds.
	DestHeader = "Nats-Trace-Dest"
	// HopHeader is set by a server on each copy it sends over a route,
	// gateway or leaf connection: "1", "2", ... from the first server,
	// "1.1", "1.2", ... from the next. The receiving server's Report
	// carries it in its request headers (Report.Hop).
	HopHeader = "Nats-Trace-Hop"
	// OnlyHeader "true" traces without delivering. This package never sets
	// it: a traced request is answered as any other.
	OnlyHeader = "Nats-Trace-Only"
)

// DefaultQuiet is the gap Collect waits for a further report when the
// reports so far do not yet account for every hop: 500 ms.
const DefaultQuiet = 500 * time.Millisecond

// Trace is the trace of one request: a subscription on a fresh inbox of its
// own (Dest), where the servers publish their reports. Make one with Start,
// mark the request with Msg or Header, send it, then Collect; Stop ends it
// early. A Trace is for one goroutine.
type Trace struct {
	nc   *nats.Conn
	sub  *nats.Subscription
	dest string
}

// Start subscribes to a fresh inbox of nc (nc.NewInbox: two tokens, under
// nats.CustomInboxPrefix's prefix when nc has one, so never under nats.go's
// response mux, whose subscription would otherwise see the reports) and
// flushes, so that nc's server has the subscription before the traced
// request. The subscription is synchronous: Start starts no goroutine.
// Collect or Stop unsubscribes it.
//
// Errors: nats.ErrInvalidConnection (nc nil), nats.ErrConnectionClosed,
// nats.ErrConnectionDraining, a denied subscription
// (nats.ErrPermissionViolation, under nats.PermissionErrOnSubscribe) and
// other connection errors, from the subscribe or the flush.
func Start(nc *nats.Conn) (*Trace, error) {
	switch {
	case nc == nil:
		return nil, fmt.Errorf("msgtrace: %w", nats.ErrInvalidConnection)
	case nc.IsClosed():
		return nil, fmt.Errorf("msgtrace: %w", nats.ErrConnectionClosed)
	case nc.IsDraining():
		return nil, fmt.Errorf("msgtrace: %w", nats.ErrConnectionDraining)
	}
	dest := nc.NewInbox()
	sub, err := nc.SubscribeSync(dest)
	if err != nil {
		return nil, fmt.Errorf("msgtrace %q: %w", dest, err)
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("msgtrace %q: %w", dest, err)
	}
	return &Trace{nc: nc, sub: sub, dest: dest}, nil
}

// Dest is the trace's inbox: the value of DestHeader on a traced request.
func (t *Trace) Dest() string { return t.dest }

// Msg sets DestHeader on m (making m.Header if nil) and returns m, for
// nats.go's own nc.RequestMsgWithContext or nc.PublishMsg. The server must
// support headers (nats.ErrHeadersNotSupported otherwise, from the send).
func (t *Trace) Msg(m *nats.Msg) *nats.Msg {
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	m.Header.Set(DestHeader, t.dest)
	return m
}

// Header returns a new header holding DestHeader, for a call that takes
// headers rather than a nats.Msg (gather.Header, for instance).
func (t *Trace) Header() nats.Header { return t.Msg(&nats.Msg{}).Header }

// Stop unsubscribes the trace's inbox; reports still on their way are
// dropped. It is idempotent, and what Collect does when it returns.
func (t *Trace) Stop() {
	if t.sub != nil && t.sub.IsValid() {
		_ = t.sub.Unsubscribe()
	}
}

// Collect reads the servers' reports into a Tree until every hop is
// accounted for (Tree.Complete: the first server's report, and a report for
// every copy each server said it sent on), or until no report arrives for
// quiet (≤ 0: DefaultQuiet) while some are missing, or until ctx ends,
// whichever is first; then it unsubscribes the trace's inbox. Call it after
// the traced request was sent (usually after its reply: the first server
// reports once it has delivered the request). A message on the inbox that
// is not a report is counted in Tree.Skipped.
//
// The Tree holds what arrived, also with an error. Errors (each wrapped
// with the inbox):
//   - nats.ErrTimeout: no report at all within quiet (the request was not
//     sent, or the server predates message tracing, 2.11);
//   - ctx's error (context.Canceled, context.DeadlineExceeded);
//   - nats.ErrConnectionClosed: nc closed before or during the wait;
//   - nats.ErrConnectionDraining: nc draining before or during the wait
//     (nats.ErrConnectionClosed once the drain has closed it);
//   - nats.ErrBadSubscription: Collect or Stop already ran.
//
// A Tree cut short by quiet is returned without an error: Tree.Missing
// names the hops that sent nothing.
func (t *Trace) Collect(ctx context.Context, quiet time.Duration) (*Tree, error) {
	defer t.Stop()
	if quiet <= 0 {
		quiet = DefaultQuiet
	}
	tree := &Tree{}
	fail := func(err error) (*Tree, error) { return tree, fmt.Errorf("msgtrace %q: %w", t.dest, err) }
	// The subscription first: a close or drain under way invalidates it
	// after the connection's status has changed, so its status, read
	// next, says why.
	if valid := t.sub.IsValid(); !valid || t.nc.IsClosed() || t.nc.IsDraining() {
		switch {
		case t.nc.IsClosed():
			return fail(nats.ErrConnectionClosed)
		case t.nc.IsDraining():
			return fail(nats.ErrConnectionDraining)
		default:
			return fail(nats.ErrBadSubscription)
		}
	}
	for !tree.Complete() {
		qctx, cancel := context.WithTimeout(ctx, quiet)
		m, err := t.sub.NextMsgWithContext(qctx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return fail(ctx.Err())
		case errors.Is(err, context.DeadlineExceeded) && len(tree.Reports) == 0:
			return fail(fmt.Errorf("no report within %v: %w", quiet, nats.ErrTimeout))
		case errors.Is(err, context.DeadlineExceeded):
			return tree, nil
		case t.nc.IsClosed():
			return fail(nats.ErrConnectionClosed)
		case t.nc.IsDraining() || errors.Is(err, nats.ErrConnectionDraining):
			return fail(nats.ErrConnectionDraining)
		default:
			return fail(err)
		}
		var r Report
		if json.Unmarshal(m.Data, &r) != nil || len(r.Steps) == 0 {
			tree.Skipped++
			continue
		}
		tree.add(&r)
	}
	return tree, nil
}

// A queue group member: join with a confirmed subscription, leave by
// draining, settle before reading counts.

package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// SubscribeFunc makes a member's subscription: it calls subscribe (nats.go's
// QueueSubscribe, or Subscribe when group is ""), and returns the
// subscription once the server has it, or an error (after unsubscribing).
// Its shape is reqreply/denials.SubscribeChecked's, which also fails within
// a round trip when the server's permissions deny the subscription.
type SubscribeFunc func(ctx context.Context, nc *nats.Conn, subject, group string, subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error)

// Option changes how Join subscribes.
type Option func(*options)

type options struct {
	subscribe SubscribeFunc
}

// WithSubscribe makes Join subscribe through f instead of its own subscribe
// and flush (flushed).
func WithSubscribe(f SubscribeFunc) Option {
	return func(o *options) { o.subscribe = f }
}

// Member is one subscriber in a queue group (or a plain subscriber, when its
// group is ""), on a connection it shares with whatever else its user runs.
// nats.go calls its handler for one message at a time, in order: requests
// routed to it while it is busy wait in its client (the subscription's
// pending limits, 512 Ki messages or 64 MiB by default, bound them). Make
// one with Join.
type Member struct {
	nc  *nats.Conn
	sub *nats.Subscription
}

// Join subscribes h to subject in queue group group on nc (a plain
// subscription when group is "") and flushes before returning, so once Join
// returns nil the server has the subscription and counts the member for the
// next message on subject. On a cluster other servers learn of it once the
// interest propagates: a requester elsewhere waits for it (with a probe, for
// example reqreply/probe.Await, which a handler wrapped with probe.Handler
// answers). The flush waits at most the connection's timeout (nats.Timeout,
// 2 s by default). The error names the subject and group and wraps nats.go's
// error of the subscribe or flush: nats.ErrBadSubject, nats.ErrBadQueueName,
// nats.ErrConnectionClosed, nats.ErrTimeout, ...; or what the SubscribeFunc
// of WithSubscribe returned (nats.ErrPermissionViolation, with
// denials.SubscribeChecked). nc is left open either way.
func Join(nc *nats.Conn, subject, group string, h nats.MsgHandler, opts ...Option) (*Member, error) {
	o := options{subscribe: flushed}
	for _, opt := range opts {
		opt(&o)
	}
	sub, err := o.subscribe(context.Background(), nc, subject, group, func() (*nats.Subscription, error) {
		if group == "" {
			return nc.Subscribe(subject, h)
		}
		return nc.QueueSubscribe(subject, group, h)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %q in group %q: %w", subject, group, err)
	}
	return &Member{nc: nc, sub: sub}, nil
}

// flushed is Join's SubscribeFunc: subscribe, then flush within the
// connection's timeout; on a failed flush, unsubscribe.
func flushed(_ context.Context, nc *nats.Conn, subject, _ string, subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error) {
	sub, err := subscribe()
	if err != nil {
		return nil, err
	}
	if err := nc.FlushTimeout(nc.Opts.Timeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %q: flush: %w", subject, err)
	}
	return sub, nil
}

// Conn returns the member's connection.
func (m *Member) Conn() *nats.Conn { return m.nc }

// Subscription returns the member's subscription: its Subject and Queue,
// and IsValid, false once it has left.
func (m *Member) Subscription() *nats.Subscription { return m.sub }

// Leave takes the member out of its group gracefully by draining its
// subscription: the server stops routing to it at once (the UNSUB), and the
// requests it had already taken, in its handler or queued in its client, are
// handled before Leave returns. The connection stays open. The error is
// ctx's if it ends first, or nats.go's error of the drain
// (nats.ErrConnectionClosed, ...); one wrapping nats.ErrConnectionClosed,
// within a round trip, when the connection closes during the drain (the
// requests still held are then never answered).
func (m *Member) Leave(ctx context.Context) error {
	closed := m.sub.StatusChanged(nats.SubscriptionClosed)
	// nats.go does not report a subscription closed by its connection's
	// close: watch the connection too.
	connClosed := m.nc.StatusChanged(nats.CLOSED)
	defer m.nc.RemoveStatusListener(connClosed)
	if err := m.sub.Drain(); err != nil {
		return fmt.Errorf("drain subscription: %w", err)
	}
	if m.nc.IsClosed() {
		return fmt.Errorf("drain subscription: %w", nats.ErrConnectionClosed)
	}
	select {
	case <-closed:
		return nil
	case <-connClosed:
		return fmt.Errorf("drain subscription: %w", nats.ErrConnectionClosed)
	case <-ctx.Done():
		return fmt.Errorf("drain subscription: %w", ctx.Err())
	}
}

// Drain shuts the member down gracefully by draining its connection, as a
// member process does on SIGTERM: every subscription on it is drained as in
// Leave, the replies are flushed, then the connection closes. It returns
// once the connection is closed. The error is ctx's if it ends first, or
// nats.go's error of the drain (nats.ErrConnectionClosed if it was closed
// already). nats.go gives up on a drain after the connection's
// DrainTimeout (nats.DrainTimeout, 30 s by default) and closes it anyway,
// reporting nats.ErrDrainTimeout to the connection's error handler.
func (m *Member) Drain(ctx context.Context) error {
	closed := m.nc.StatusChanged(nats.CLOSED)
	defer m.nc.RemoveStatusListener(closed)
	if err := m.nc.Drain(); err != nil {
		return fmt.Errorf("drain connection: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain connection: %w", ctx.Err())
	}
}

// Settle returns once the member has handled every message the server sent
// it before the call and its replies have reached the server; see the
// package function Settle.
func (m *Member) Settle(ctx context.Context) error { return Settle(ctx, m.nc) }

// Settle returns once the subscriptions on nc have handled every message the
// server sent nc before the call and what their callbacks published has
// reached the server: a Flush (the server answers the PING after the
// messages it already queued for this connection), a nats.go Barrier (which
// runs after the subscription callbacks have returned for every message
// received before it), and a second Flush. Counts a handler keeps, read
// afterwards, are final for those messages. A closed connection is settled
// already; a reconnecting one cannot settle: the error wraps
// nats.ErrConnectionReconnecting. Without a deadline on ctx, it waits at
// most the connection's DrainTimeout (nats.DrainTimeout, 30 s by default). The error is ctx's when it ends first, or the flush's
// (nats.ErrTimeout, ...).
func Settle(ctx context.Context, nc *nats.Conn) error {
	if nc.IsClosed() {
		return nil
	}
	if nc.IsReconnecting() {
		// A flush would wait for the reconnect: what it sent is in its
		// reconnect buffer or lost, and the count cannot be final.
		return fmt.Errorf("settle: %w", nats.ErrConnectionReconnecting)
	}
	if _, ok := ctx.Deadline(); !ok {
		// FlushWithContext needs a deadline.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, drainTimeout(nc))
		defer cancel()
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("settle: %w", err)
	}
	done := make(chan struct{})
	if err := nc.Barrier(func() { close(done) }); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("settle: %w", err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("settle: %w", ctx.Err())
	}
	if err := nc.FlushWithContext(ctx); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("settle: %w", err)
	}
	return nil
}

// drainTimeout is nc's DrainTimeout, or nats.go's default when unset.
func drainTimeout(nc *nats.Conn) time.Duration {
	if d := nc.Opts.DrainTimeout; d > 0 {
		return d
	}
	return nats.DefaultDrainTimeout
}

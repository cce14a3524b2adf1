// Variant 2, shared: one wildcard inbox subscription per connection; each
// gather a token on it. The production version.

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// ErrMuxClosed is wrapped (with nats.ErrBadSubscription) by gathers on a
// Mux that was closed.
var ErrMuxClosed = errors.New("mux closed")

// Mux is the shared variant of scatter-gather: one wildcard subscription per
// connection, "<inbox>.*", made once by NewMux. Each gather takes a fresh
// nuid token and publishes with "<inbox>.<token>" as its reply subject; the
// Mux routes each reply by its last token to that gather's queue. There is no
// SUB, UNSUB or flush per gather, so a gather costs one publish, like
// nc.Request, while still collecting many replies.
//
// The subscription's handler only appends to a queue and never blocks, so a
// slow or abandoned gather never holds up another gather or the connection's
// message dispatch: a gather whose consumer falls behind by more than its
// PendingLimits has further replies dropped and counted. Late replies, for a
// gather that has ended, are dropped at once and counted in Late. A gather's
// queue holds at most its PendingLimits (65,536 replies or 64 MiB by default)
// so a stalled consumer cannot exhaust memory.
//
// A Mux is safe for concurrent gathers. Close it when done (or close the
// connection); gathers running then end with StopClosed.
type Mux struct {
	nc     *nats.Conn
	prefix string // "<inbox>." — replies arrive on prefix+token
	sub    *nats.Subscription

	mu      sync.Mutex
	gathers map[string]*queue
	err     error // set once the subscription has closed
	late    int
}

// NewMux subscribes nc to a new "<inbox>.*" (nc.NewInbox, so never under the
// subscription nats.go keeps for nc.Request) and flushes, so the server has
// it before the first request. Errors wrap nats.ErrInvalidArg for a nil nc,
// or the subscribe or flush error (nats.ErrConnectionClosed, ...).
func NewMux(nc *nats.Conn) (*Mux, error) {
	if nc == nil {
		return nil, fmt.Errorf("new mux: nil connection: %w (%w)", nats.ErrInvalidArg, nats.ErrInvalidConnection)
	}
	m := &Mux{nc: nc, prefix: nc.NewInbox() + ".", gathers: make(map[string]*queue)}
	sub, err := nc.Subscribe(m.prefix+"*", m.route)
	if err != nil {
		return nil, fmt.Errorf("new mux: subscribe: %w", err)
	}
	// The handler never blocks, so the subscription's own pending limits are
	// only reached if the whole connection stalls; each gather has its own.
	sub.SetClosedHandler(func(string) { m.closed() })
	m.sub = sub
	// Bounded by the connection's own timeout (2 s by default), not
	// nats.go's fixed 10 s, so a server that stopped answering fails fast.
	if err := nc.FlushTimeout(flushTimeout(nc)); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("new mux: flush: %w", err)
	}
	return m, nil
}

// Name returns "shared".
func (m *Mux) Name() string { return "shared" }

// Close unsubscribes the Mux; gathers still running end with StopClosed and
// an error wrapping ErrMuxClosed and nats.ErrBadSubscription. It is safe to
// call more than once and after the connection has closed.
func (m *Mux) Close() error {
	if m == nil || m.sub == nil {
		return nil // not made by NewMux: nothing to release
	}
	err := m.sub.Unsubscribe()
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		err = nil
	}
	// The closed handler runs from the subscription's goroutine; wake the
	// gathers now as well, so Close does not depend on its timing.
	m.closed()
	return err
}

// Late returns how many replies arrived for gathers that had already ended,
// or were left unread when their gather ended (after MaxReplies, a sentinel,
// a break).
func (m *Mux) Late() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.late
}

// route is the subscription's handler: hand the reply to its gather's queue.
// It holds m.mu while it pushes, so a gather that deregisters (under m.mu)
// sees every reply either in its queue or in Late, never neither.
func (m *Mux) route(msg *nats.Msg) {
	token := msg.Subject[len(m.prefix):]
	m.mu.Lock()
	defer m.mu.Unlock()
	if q := m.gathers[token]; q != nil {
		q.push(msg)
		return
	}
	m.late++
}

// closed ends every running gather: the subscription is gone.
func (m *Mux) closed() {
	err := fmt.Errorf("%w (%w)", ErrMuxClosed, nats.ErrBadSubscription)
	if m.nc.IsClosed() {
		err = nats.ErrConnectionClosed
	}
	m.mu.Lock()
	if m.err == nil {
		m.err = err
	}
	err = m.err
	qs := make([]*queue, 0, len(m.gathers))
	for _, q := range m.gathers {
		qs = append(qs, q)
	}
	m.mu.Unlock()
	for _, q := range qs {
		q.fail(err)
	}
}

// Stream checks subject and opts (errors wrap nats.ErrBadSubject or
// nats.ErrInvalidArg) and returns a Stream whose Replies, when ranged,
// register a new token, publish the request with "<inbox>.<token>" as its
// reply subject, yield the replies routed to the token until a stop
// condition, and deregister the token on every way out.
func (m *Mux) Stream(ctx context.Context, subject string, data []byte, opts ...Option) (*Stream, error) {
	var nc *nats.Conn
	if m != nil {
		nc = m.nc
	}
	c, err := newConfig(ctx, nc, subject, data, opts)
	if err != nil {
		return nil, err
	}
	return newStream(func(yield func(Reply) bool) (Result, error) {
		start, deadline, err := begin(ctx, c)
		if err != nil {
			return notSent(subject, "before the request", start, deadline, err)
		}

		// A token of its own routes this gather's replies to its queue;
		// registered before publishing, so no reply can come too early.
		token := nuid.Next()
		q := &queue{ctx: ctx, deadline: deadline, limitMsgs: c.pendingMsgs, limitBytes: c.pendingBytes, signal: make(chan struct{}, 1)}
		q.msgs = q.buf[:0]
		m.mu.Lock()
		if m.err != nil {
			err := m.err
			m.mu.Unlock()
			return notSent(subject, "register", start, deadline, err)
		}
		m.gathers[token] = q
		m.mu.Unlock()
		defer q.release()
		defer func() {
			// Replies that came but were not taken (after max, a sentinel, a
			// break, the deadline) are late too.
			m.mu.Lock()
			delete(m.gathers, token)
			m.late += q.len()
			m.mu.Unlock()
		}()

		// One publish; the Mux's subscription already exists on the server.
		msg := &nats.Msg{Subject: subject, Reply: m.prefix + token, Data: data, Header: c.header}
		if err := nc.PublishMsg(msg); err != nil {
			return notSent(subject, "publish", start, deadline, err)
		}
		return collect(ctx, c, start, deadline, q, subject, yield)
	}), nil
}

// flushTimeout bounds the flushes that make subscriptions known: the
// connection's connect timeout (nats.Timeout, 2 s by default).
func flushTimeout(nc *nats.Conn) time.Duration {
	if t := nc.Opts.Timeout; t > 0 {
		return t
	}
	return nats.DefaultTimeout
}

// queue holds one gather's replies between the Mux's handler and the
// gather's consumer: a slice guarded by a mutex, a one-slot signal channel to
// wake the consumer, and a limit past which replies are dropped.
type queue struct {
	ctx        context.Context // the caller's
	deadline   time.Time
	mu         sync.Mutex
	msgs       []*nats.Msg
	buf        [4]*nats.Msg // msgs' first backing array: no allocation for a few replies
	head       int
	bytes      int // payload and header bytes in msgs[head:]
	limitMsgs  int
	limitBytes int
	drop       int
	err        error
	signal     chan struct{}
	timer      *time.Timer
}

// size is what a reply counts against the byte limit: payload and headers.
func size(m *nats.Msg) int {
	return m.Size() - len(m.Subject) - len(m.Reply)
}

func (q *queue) push(m *nats.Msg) {
	n := size(m)
	q.mu.Lock()
	if len(q.msgs)-q.head >= q.limitMsgs || q.bytes+n > q.limitBytes {
		q.drop++
		q.mu.Unlock()
		return
	}
	q.msgs = append(q.msgs, m)
	q.bytes += n
	q.mu.Unlock()
	q.wake()
}

func (q *queue) fail(err error) {
	q.mu.Lock()
	q.err = err
	q.mu.Unlock()
	q.wake()
}

func (q *queue) wake() {
	select {
	case q.signal <- struct{}{}:
	default: // already signalled
	}
}

// pop returns the oldest reply, or the queue's error once it is empty.
func (q *queue) pop() (*nats.Msg, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head < len(q.msgs) {
		m := q.msgs[q.head]
		q.msgs[q.head] = nil
		q.head++
		q.bytes -= size(m)
		if q.head == len(q.msgs) {
			q.msgs, q.head = q.msgs[:0], 0
		}
		return m, nil
	}
	return nil, q.err
}

func (q *queue) next(until time.Time) (*nats.Msg, error) {
	for {
		// The deadline and a cancel apply to replies already queued too: a
		// consumer that fell behind does not stretch the gather. A queued
		// reply arrived within the stall gap, however late it is taken.
		if err := q.ctx.Err(); err != nil {
			return nil, err
		}
		if !time.Now().Before(q.deadline) {
			return nil, context.DeadlineExceeded
		}
		if m, err := q.pop(); m != nil || err != nil {
			return m, err
		}
		// Wait for a push, the deadline or stall gap, or a cancel. One
		// timer per gather, from a pool, reset for each wait.
		if q.timer == nil {
			q.timer = timerPool.Get().(*time.Timer)
		}
		q.timer.Reset(time.Until(until))
		select {
		case <-q.signal:
			q.timer.Stop()
		case <-q.timer.C:
			return nil, errWaitOver
		case <-q.ctx.Done():
			q.timer.Stop()
			return nil, q.ctx.Err()
		}
	}
}

// release returns the queue's timer to the pool.
func (q *queue) release() {
	if q.timer != nil {
		q.timer.Stop()
		timerPool.Put(q.timer)
		q.timer = nil
	}
}

// timerPool keeps stopped timers for gathers to reuse: a gather that returns
// in microseconds should not allocate one each time. Since Go 1.23 a
// stopped or reset timer's channel holds no stale tick.
var timerPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs) - q.head
}

func (q *queue) dropped() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.drop
}

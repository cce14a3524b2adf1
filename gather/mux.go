// Variant 2, shared: one wildcard inbox subscription per Mux, on a
// connection of its own; each gather a token on it. The production version.

package gather

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrMuxClosed is wrapped (with nats.ErrBadSubscription) by gathers on a
// Mux that was closed.
var ErrMuxClosed = errors.New("mux closed")

// Mux is the shared variant of scatter-gather: one wildcard subscription,
// "<inbox>.*", made once by NewMux. Each gather takes a fresh random token and
// publishes with "<inbox>.<token>" as its reply subject; the Mux routes each
// reply by its last token to that gather's queue. There is no SUB, UNSUB or
// flush per gather, so a gather costs one publish, like nc.Request, while
// still collecting many replies.
//
// The Mux sends its requests and receives their replies on a connection of
// its own, opened by NewMux with nc's options (named "<nc's name> mux"),
// and follows nc's state: that is what lets a gather survive a drain of nc.
// nats.go's drain unsubscribes every subscription of nc at once (all but the
// one it keeps for nc.Request), so a Mux subscribed on nc would lose the
// replies of every gather in flight. With its own connection:
//   - a gather in flight when nc begins to drain keeps its replies until its
//     own stop condition, also after nc's drain has ended;
//   - a gather started while nc drains its subscriptions is sent, as
//     nc.Request's would be; once nc only flushes or has closed, it fails
//     as nc.Request does (nats.ErrConnectionDraining, nats.ErrConnectionClosed);
//   - nc's drain never waits for the Mux: nothing of the Mux is on nc.
//
// The request goes out on the same connection that has the subscription,
// so the server's no-responders status (sent only to the publishing client)
// reaches the gather. What the second connection costs:
//   - it is one more client connection (a TCP connection, its read loop and
//     flusher), counted against the server's, account's and user's
//     connection limits: make one Mux per connection, not per request;
//   - NATS keeps the order of one connection's messages, not across two: a
//     message published on nc just before a gather may reach a responder
//     after the gather's request, unless nc.Flush is called in between
//     (the server has then processed nc's message);
//   - nc's connection-event handlers are not called for it; its async
//     error handler is, the one nc has at the time (also one set with
//     nc.SetErrorHandler after NewMux), for what is not a gather's (with
//     WithDenials, a denied publish of a gather ends that gather with the
//     error instead, reported once: see denied);
//   - if it closes for good by itself (its reconnect attempts used up)
//     the Mux ends its gathers with nats.ErrConnectionClosed and refuses
//     new ones, even if nc got its server back: make a new Mux.
//
// A close of nc without a drain ends the gathers running with StopClosed
// (nats.ErrConnectionClosed). Once nc has closed and the last gather has
// ended, the Mux closes its connection by itself; Close does it at once.
//
// The subscription's handler only appends to a queue and never blocks, so a
// slow or abandoned gather never holds up another gather or the connection's
// message dispatch: a gather whose consumer falls behind by more than its
// PendingLimits has further replies dropped and counted. A gather's queue
// holds at most its PendingLimits (65,536 replies or 64 MiB by default) so a
// stalled consumer cannot exhaust memory. The subscription itself has no
// pending limit, so that nats.go never drops there a reply no gather would
// count; it holds messages only while the handler catches up.
//
// Conservation: every message the Mux's subscription receives is counted
// exactly once, as one of
//   - a reply handed to a consumer (Result.Count),
//   - a message taken but not handed out (Result.Skipped: a sentinel, a
//     no-responders status, a reply found after the deadline or a cancel),
//   - dropped (Result.Dropped: over the gather's PendingLimits), or
//   - late (Late: for no running gather, or left unread when its gather
//     ended; Result.Unread counts the latter per gather),
//
// so Received() == Σ(Count + Skipped + Dropped) + Late() once every gather
// has returned. The same holds per gather for what reached its token while
// it was registered.
//
// A long-lived Mux holds no state per subject and none for a gather that
// has ended: its map of running gathers (by token) holds at most the
// gathers in flight, each entry removed on every way out
// (TestMuxStateBoundedByInFlight).
//
// A Mux is safe for concurrent gathers. Close it when done.
type Mux struct {
	nc     *nats.Conn // the connection whose state the Mux follows
	rc     *nats.Conn // the Mux's own: sends the requests, receives the replies
	prefix string     // "<inbox>." — replies arrive on prefix+token
	sub    *nats.Subscription
	status chan nats.Status // nc's status changes, read by watch
	quit   chan struct{}    // closed by Close: watch returns
	once   sync.Once        // closes quit
	wg     sync.WaitGroup   // watch

	mu       sync.Mutex
	gathers  map[string]*queue // by token
	err      error             // set once no gather can start any more
	received int               // messages the subscription has routed
	late     int
	ncDone   bool // nc has closed after a drain: close rc after the last gather
	closed   bool // rc closed or closing

	denials Denials // WithDenials; nil: none
}

// MuxOption configures a Mux made by NewMux.
type MuxOption func(*Mux)

// WithDenials makes the Mux's permission denials prompt (see Denials): its
// "<inbox>.*" subscription is checked with d.SubscribeChecked, so NewMux
// fails at once if the user may not subscribe to it, and its connection's
// async error handler is chained so that a denied request ends its gather
// within one round trip. Without it, both end as plain nats.go: gathers
// wait out their deadlines and nc's error handler sees the violation.
func WithDenials(d Denials) MuxOption {
	return func(m *Mux) { m.denials = d }
}

// NewMux opens the Mux's own connection with nc's options (the same servers,
// credentials, TLS, inbox prefix, reconnect policy and async error handler,
// nc's current one whenever an error comes;
// none of nc's connection-event handlers: closed, connected, disconnected,
// reconnected, reconnect error, discovered servers, lame duck; the server nc
// is connected to first), subscribes it to
// a new "<inbox>.*" (nc.NewInbox, so never under the subscription nats.go
// keeps for nc.Request) and flushes, so the server has the subscription
// before the first request, and (WithDenials) checks that the server took
// it. Errors wrap nats.ErrInvalidArg for a nil nc, nats.ErrConnectionClosed
// or nats.ErrConnectionDraining for nc, nats.ErrPermissionViolation and the
// hook's ErrDenied when the user may not subscribe to "<inbox>.*" (the text
// is the server's, naming that subject; only WithDenials), or the connect,
// subscribe or flush error (nats.ErrTimeout after the connection's timeout,
// 2 s by default).
//
// WithDenials also chains the Mux connection's async error handler: a
// denied publish of a gather's request ends that gather (and any other
// running gather on the same subject) within about one round trip,
// StopFailed, with an error wrapping nats.ErrPermissionViolation and the
// hook's ErrDenied that names the subject, instead of at its deadline; see
// denied for why this way.
func NewMux(nc *nats.Conn, options ...MuxOption) (*Mux, error) {
	if nc == nil {
		return nil, fmt.Errorf("new mux: nil connection: %w (%w)", nats.ErrInvalidArg, nats.ErrInvalidConnection)
	}
	switch {
	case nc.IsClosed():
		return nil, fmt.Errorf("new mux: %w", nats.ErrConnectionClosed)
	case nc.IsDraining():
		return nil, fmt.Errorf("new mux: %w", nats.ErrConnectionDraining)
	}
	m := &Mux{nc: nc, prefix: nc.NewInbox() + ".", gathers: make(map[string]*queue), quit: make(chan struct{})}
	for _, opt := range options {
		if opt != nil {
			opt(m)
		}
	}

	// The Mux's own connection: nc's options, less the connection-event
	// handlers, which belong to nc alone: called for the Mux's connection
	// too they would report every disconnect and reconnect twice, and hand
	// the application a *nats.Conn it never made. The async error handler
	// stays: a denied publish or subscription of the Mux shows only there.
	// nc's current server first.
	opts := nc.Opts
	opts.Name = strings.TrimSpace(nc.Opts.Name + " mux")
	opts.ClosedCB, opts.ConnectedCB, opts.DisconnectedCB, opts.DisconnectedErrCB = nil, nil, nil, nil
	opts.ReconnectedCB, opts.ReconnectErrCB, opts.DiscoveredServersCB, opts.LameDuckModeHandler = nil, nil, nil, nil
	// nc's async error handler as it is when an error comes, not as it was
	// now: a caller that sets its own with nc.SetErrorHandler after NewMux
	// sees the Mux's errors too.
	opts.AsyncErrorCB = func(c *nats.Conn, s *nats.Subscription, err error) {
		if h := nc.ErrorHandler(); h != nil {
			h(c, s, err)
		}
	}
	var rc *nats.Conn
	err := nats.ErrNoServers
	if url := nc.ConnectedUrl(); url != "" {
		same := opts
		same.Url, same.NoRandomize = url, true
		rc, err = same.Connect()
	}
	if err != nil {
		// A server nc learned from its cluster may not take the user
		// information given in nc's own URL: try nc's servers as given.
		rc, err = opts.Connect()
	}
	if err != nil {
		return nil, fmt.Errorf("new mux: connect: %w", err)
	}
	m.rc = rc
	// The inbox subscription, checked (Denials.SubscribeChecked): a watch for a
	// violation on that exact subject, the subscribe, a flush bounded by
	// the connection's timeout (2 s by default, not nats.go's fixed 10 s),
	// then a look for the violation. A user who may not subscribe to the
	// inbox prefix gets an error from NewMux, not gathers that all end at
	// their deadline with no reply. The flush also makes the server have
	// the subscription before the first request.
	subject := m.prefix + "*"
	sub, err := subscribeFlushed(context.Background(), m.denials, rc, subject, func() (*nats.Subscription, error) {
		return rc.Subscribe(subject, m.route)
	})
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("new mux: subscribe %q: %w", subject, err)
	}
	// Each gather bounds what it holds (PendingLimits); the subscription
	// itself must never drop, since a message it dropped would be counted
	// by no gather and break the conservation law. Its queue grows only
	// while the handler, which never blocks, lags behind the read loop.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		rc.Close()
		return nil, fmt.Errorf("new mux: subscribe: %w", err)
	}
	sub.SetClosedHandler(func(string) { m.fail(nats.ErrConnectionClosed) })
	m.sub = sub
	// Denied publishes (WithDenials): rc's error handler, chained, hands
	// each one to the gathers publishing on that subject (see denied); the
	// others go on to the handler rc had (the hook's dispatch, if it has
	// one, then nc's current handler).
	if m.denials != nil {
		next := rc.ErrorHandler()
		rc.SetErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
			if !m.denied(err) && next != nil {
				next(c, s, err)
			}
		})
	}

	// Watch nc: a close without a drain ends the gathers; a drain does not.
	// The state is read again once the listener is in place, in case nc
	// changed before.
	m.status = nc.StatusChanged(nats.DRAINING_SUBS, nats.CLOSED)
	draining := nc.IsDraining()
	m.wg.Add(1)
	go m.watch(draining)
	if nc.IsClosed() {
		m.ncClosed(draining)
	}
	return m, nil
}

// Name returns "shared".
func (m *Mux) Name() string { return "shared" }

// Close closes the Mux's connection; gathers still running end with
// StopClosed and an error wrapping ErrMuxClosed and nats.ErrBadSubscription.
// It is safe to call more than once, at any time: also while nc drains or
// after it has closed. It returns nil.
func (m *Mux) Close() error {
	if m == nil || m.sub == nil {
		return nil // not made by NewMux: nothing to release
	}
	m.fail(fmt.Errorf("%w (%w)", ErrMuxClosed, nats.ErrBadSubscription))
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.rc.Close()
	m.once.Do(func() { close(m.quit) })
	m.wg.Wait()
	return nil
}

// Late returns how many replies arrived for no running gather (it had
// ended) or were left unread when their gather ended (after MaxReplies, a
// sentinel, a break, the deadline).
func (m *Mux) Late() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.late
}

// Received returns how many messages the Mux's subscription has received:
// see the conservation law in Mux's doc.
func (m *Mux) Received() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.received
}

// route is the subscription's handler: hand the reply to its gather's queue.
// It holds m.mu while it pushes, and a gather deregisters under m.mu, so
// every message is counted exactly once: in its gather's queue or dropped
// count while the gather is registered, in Late otherwise.
func (m *Mux) route(msg *nats.Msg) {
	token := msg.Subject[len(m.prefix):]
	m.mu.Lock()
	defer m.mu.Unlock()
	m.received++
	if q := m.gathers[token]; q != nil {
		q.push(msg)
		return
	}
	m.late++
}

// denied ends, at once, every running gather whose request subject the
// server denied err's publish to, and reports whether there was one: then
// the gather's error reports the violation and rc's next handler does not.
// A denial of the Mux's own "<inbox>.*" subscription (a config reload that
// took the inbox prefix away from the user: the server then removes the
// subscription) fails the Mux: every running gather ends with it, and
// every later one is refused with it, instead of each waiting out its
// deadline with no reply.
//
// Why this way. nats-server answers a denied PUB with
// "-ERR 'Permissions Violation for Publish to "<subject>"'" and nothing
// else (no reply, no no-responders status), and nats.go hands that only to
// the connection's async error handler, without saying which publish it
// was. The Mux owns rc, so it chains rc's handler once, in NewMux, instead
// of registering each gather in a process-wide watch list (Denials.WatchPublish
// takes a global lock and allocates a waiter per request: on the hot path of
// every gather, for an error that is rare). Each gather records its subject
// (a field of its pooled state: no cost), and the handler, on a violation,
// looks through the running gathers under m.mu. The server handles one
// connection's protocol in order, so the -ERR arrives within one round trip
// of the PUB, while its gather is registered (it registers before it
// publishes). Every gather then running on that subject is ended, not only
// the one that sent it: they publish as the same user on the same
// connection, so the server denies them all. Denials.Violation reads the
// subject, which the server writes quoted (%q).
func (m *Mux) denied(err error) bool {
	publish, subject, ok := m.denials.Violation(err)
	if !ok {
		return false
	}
	err = m.denials.Denied(err)
	if !publish {
		if subject != m.prefix+"*" {
			return false // not the Mux's
		}
		m.fail(err)
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	claimed := false
	for _, q := range m.gathers {
		if q.subject == subject {
			q.fail(err)
			claimed = true
		}
	}
	return claimed
}

// watch follows nc's status until nc closes or the Mux does; drained says
// whether nc was draining when it began.
func (m *Mux) watch(drained bool) {
	defer m.wg.Done()
	defer m.nc.RemoveStatusListener(m.status)
	for {
		select {
		case <-m.quit:
			return
		case st, ok := <-m.status:
			if !ok {
				return
			}
			switch st {
			case nats.DRAINING_SUBS:
				drained = true
			case nats.CLOSED:
				m.ncClosed(drained)
				return
			}
		}
	}
}

// ncClosed handles the close of nc. After a drain, running gathers go on to
// their own stop conditions and the Mux's connection closes after the last;
// without one, they end now with nats.ErrConnectionClosed.
func (m *Mux) ncClosed(drained bool) {
	if !drained {
		m.fail(nats.ErrConnectionClosed)
	}
	m.mu.Lock()
	if m.err == nil {
		m.err = nats.ErrConnectionClosed // no new gather: nc cannot publish
	}
	m.ncDone = true
	closeNow := len(m.gathers) == 0 && !m.closed
	m.closed = m.closed || closeNow
	m.mu.Unlock()
	if closeNow {
		m.rc.Close()
	}
}

// fail ends every running gather with err and refuses new ones. It tells
// each queue under m.mu, as route pushes: once a gather has deregistered,
// nothing of the Mux touches its state again, so the state can be reused.
func (m *Mux) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil || errors.Is(err, ErrMuxClosed) {
		m.err = err
	}
	for _, q := range m.gathers {
		q.fail(err)
	}
}

// register gives q a fresh token and its reply subject, and adds it, unless
// the Mux can no longer run gathers (then the error says why). The token is
// a random 64-bit number (math/rand/v2: no allocation, no lock), written in
// base 36 after the prefix into a buffer on the stack: the reply subject is
// the gather's one allocation. Random rather than a counter, so a responder
// cannot guess another gather's reply subject from its own.
func (m *Mux) register(q *queue) error {
	var buf [64]byte
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	q.mux = m
	for {
		q.reply = string(strconv.AppendUint(append(buf[:0], m.prefix...), rand.Uint64(), 36))
		if m.gathers[q.token()] == nil {
			break
		}
	}
	m.gathers[q.token()] = q
	return nil
}

// deregister removes a gather's token and returns its final dropped and
// unread counts, read under the same lock as route pushes under: a reply
// that comes after this is late, one that came before is in the counts.
// Unread replies are added to Late. After nc's drain, the last gather to
// deregister closes the Mux's connection.
func (m *Mux) deregister(q *queue) (dropped, unread int) {
	m.mu.Lock()
	delete(m.gathers, q.token())
	dropped, unread = q.counts()
	m.late += unread
	closeNow := m.ncDone && len(m.gathers) == 0 && !m.closed
	m.closed = m.closed || closeNow
	m.mu.Unlock()
	if closeNow {
		m.rc.Close()
	}
	return dropped, unread
}

// Stream checks subject and opts (errors wrap nats.ErrBadSubject or
// nats.ErrInvalidArg) and returns a Stream whose Replies, when ranged,
// register a new token, publish the request with "<inbox>.<token>" as its
// reply subject, yield the replies routed to the token until a stop
// condition, and deregister the token on every way out.
func (m *Mux) Stream(ctx context.Context, subject string, data []byte, opts ...Option) (*Stream, error) {
	c, err := resolved(ctx, m.conn(), subject, data, opts)
	if err != nil {
		return nil, err
	}
	return newStream(func(yield func(Reply) bool) (Result, error) {
		return m.run(ctx, c, subject, data, yield)
	}), nil
}

// conn is nc, for checking a gather's options (nil for a nil Mux, which
// the checks refuse).
func (m *Mux) conn() *nats.Conn {
	if m == nil {
		return nil
	}
	return m.nc
}

// gatherResolved is Gather for the shared variant, with the options
// resolved into c: the same steps as ranging a Stream, without the Stream,
// its iterator and their closures (a gather that returns in tens of µs pays
// for each allocation).
func (m *Mux) gatherResolved(ctx context.Context, c config, subject string, data []byte) (Result, error) {
	// Room for MaxReplies replies at once, up to maxPrealloc: growing the
	// slice by doubling cost a gather of 1,000 replies 87 KB and 10 copies.
	var replies []Reply
	if c.max > 0 {
		replies = make([]Reply, 0, min(c.max, maxPrealloc))
	}
	res, err := m.run(ctx, c, subject, data, func(r Reply) bool {
		if len(replies) == cap(replies) && c.max > len(replies) {
			// Double toward MaxReplies: append grows a slice this large
			// by only 1.25x (7 copies, 1 MB from 1,024 to 5,000 replies).
			replies = slices.Grow(replies, min(c.max, 2*len(replies))-len(replies))
		}
		replies = append(replies, r)
		return true
	})
	res.Replies = replies
	return res, err
}

// maxPrealloc bounds the replies gather makes room for before any arrives
// (40 KB): MaxReplies is an upper bound, and a gather may get far fewer.
const maxPrealloc = 1024

// resolved resolves opts into a gather's config for nc, returned by value:
// the gather keeps it on its own stack, so that an idle gather holds no
// heap for it. An Option is a func(*config), so the config it is applied
// to escapes to the heap: that one comes from configPool and goes back at
// once.
func resolved(ctx context.Context, nc *nats.Conn, subject string, data []byte, opts []Option) (config, error) {
	p := configPool.Get().(*config)
	err := p.resolve(ctx, nc, subject, data, opts)
	c := *p
	*p = config{} // hold no caller's sentinel or header in the pool
	configPool.Put(p)
	return c, err
}

var configPool = sync.Pool{New: func() any { return new(config) }}

// run is one gather with config c (a copy on run's stack): take a pooled
// state, register a token, publish, collect.
func (m *Mux) run(ctx context.Context, c config, subject string, data []byte, yield func(Reply) bool) (Result, error) {
	start, deadline, err := begin(ctx, &c)
	if err != nil {
		return notSent(&c, subject, "before the request", start, deadline, err)
	}
	q := newQueue(&c)
	defer q.release()

	// A token of its own routes this gather's replies to its queue;
	// registered before publishing, so no reply can come too early.
	q.ctx = ctx
	q.subject = subject
	if err := m.register(q); err != nil {
		return notSent(&c, subject, "register", start, deadline, err)
	}

	// One publish; the Mux's subscription already exists on the server.
	// nc's state decides whether a gather may still start. PublishRequest
	// when there are no headers: PublishMsg would need a nats.Msg.
	switch {
	case m.nc.IsClosed():
		err = nats.ErrConnectionClosed
	case m.nc.Status() == nats.DRAINING_PUBS:
		err = nats.ErrConnectionDraining
	case c.header == nil:
		err = m.rc.PublishRequest(subject, q.reply, data)
	default:
		err = m.rc.PublishMsg(&nats.Msg{Subject: subject, Reply: q.reply, Data: data, Header: c.header})
	}
	if err != nil {
		q.finish()
		return notSent(&c, subject, "publish", start, deadline, err)
	}
	return collect(ctx, &c, start, deadline, q, subject, yield)
}

// flushTimeout bounds the flushes that make subscriptions known: the
// connection's connect timeout (nats.Timeout, 2 s by default).
func flushTimeout(nc *nats.Conn) time.Duration {
	if t := nc.Opts.Timeout; t > 0 {
		return t
	}
	return nats.DefaultTimeout
}

// queue is one gather's state on a Mux: its token and reply subject, and
// the replies between the Mux's handler and the gather's consumer (a
// backlog guarded by a mutex, a one-slot signal channel to wake the
// consumer, and a limit past which replies are dropped). It holds only
// what an idle gather needs (112 B, a size class of its own): the gather's
// options stay on its goroutine's stack (see Mux.config), and the backlog
// comes with the first reply. It comes from queuePool and goes back once
// the gather has deregistered (release): from then on the Mux never
// touches it (route and fail reach it only through m.gathers, under m.mu),
// so a reused state never sees another gather's reply.
type queue struct {
	mux     *Mux            // set by register, cleared by finish
	reply   string          // "<inbox>.<token>"
	subject string          // the request's: a denied publish names it
	ctx     context.Context // the caller's
	limits  *limits         // the gather's PendingLimits
	signal  chan struct{}
	timer   *time.Timer
	mu      sync.Mutex
	in      *backlog // nil until the first reply
	err     error
}

// backlog is the replies a gather has received and not yet read. The
// first push takes one from backlogPool: a gather waiting for its first
// reply holds none (48 B less per idle gather). msgs keeps its backing
// array across reuse up to backlogKeep slots (128 B), so a gather whose
// consumer is at most that far behind allocates nothing for it.
type backlog struct {
	msgs  []*nats.Msg
	head  int
	bytes int // payload and header bytes in msgs[head:]
	drop  int
}

const backlogKeep = 16

var backlogPool = sync.Pool{New: func() any { return new(backlog) }}

// queuePool keeps gathers' states, with their signal channel and timer, for
// reuse: a gather that returns in tens of µs should not allocate them (the
// queue, its channel, its timer and its config were 4 of the 12.5
// allocations per gather before).
var queuePool = sync.Pool{New: func() any {
	return &queue{signal: make(chan struct{}, 1)}
}}

// limits is what a gather may hold for its consumer before it drops
// replies. A queue points to defaultLimits unless the gather has its own:
// 8 B in each idle gather's state rather than 16.
type limits struct{ msgs, bytes int }

var defaultLimits = limits{msgs: DefaultPendingMsgs, bytes: DefaultPendingBytes}

// newQueue takes a gather's state from the pool, with c's pending limits.
func newQueue(c *config) *queue {
	q := queuePool.Get().(*queue)
	q.limits = &defaultLimits
	if c.pendingMsgs != DefaultPendingMsgs || c.pendingBytes != DefaultPendingBytes {
		q.limits = &limits{msgs: c.pendingMsgs, bytes: c.pendingBytes} // the one allocation PendingLimits costs
	}
	return q
}

// release returns q to the pool, cleared, once its gather has deregistered
// (or never registered). Since Go 1.23 a stopped timer's channel holds no
// stale tick; the signal channel may hold one and is drained.
func (q *queue) release() {
	if q.timer != nil {
		q.timer.Stop()
	}
	select {
	case <-q.signal:
	default:
	}
	if b := q.in; b != nil {
		msgs := b.msgs[:cap(b.msgs)]
		clear(msgs) // hold no reply in the pool
		if len(msgs) > backlogKeep {
			msgs = nil
		}
		*b = backlog{msgs: msgs[:0]}
		backlogPool.Put(b)
	}
	*q = queue{signal: q.signal, timer: q.timer}
	queuePool.Put(q)
}

// token is the last token of q's reply subject: its key in m.gathers.
func (q *queue) token() string { return q.reply[len(q.mux.prefix):] }

// size is what a reply counts against the byte limit: payload and headers.
func size(m *nats.Msg) int {
	return m.Size() - len(m.Subject) - len(m.Reply)
}

func (q *queue) push(m *nats.Msg) {
	n := size(m)
	q.mu.Lock()
	if q.in == nil {
		q.in = backlogPool.Get().(*backlog)
	}
	b := q.in
	if len(b.msgs)-b.head >= q.limits.msgs || b.bytes+n > q.limits.bytes {
		b.drop++
		q.mu.Unlock()
		return
	}
	b.msgs = append(b.msgs, m)
	b.bytes += n
	q.mu.Unlock()
	q.wake()
}

// fail ends the gather with err, unless it has an error already.
func (q *queue) fail(err error) {
	q.mu.Lock()
	if q.err == nil {
		q.err = err
	}
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
	if b := q.in; b != nil && b.head < len(b.msgs) {
		m := b.msgs[b.head]
		b.msgs[b.head] = nil
		b.head++
		b.bytes -= size(m)
		if b.head == len(b.msgs) {
			b.msgs, b.head = b.msgs[:0], 0
		}
		return m, nil
	}
	return nil, q.err
}

func (q *queue) next(until time.Time) (*nats.Msg, error) {
	for {
		// A cancel applies to replies already queued too; so does the
		// deadline, which collect checks against the clock for each reply
		// it takes (as for the inbox variant): a consumer that fell behind
		// does not stretch the gather. A queued reply arrived within the
		// stall gap, however late it is taken.
		if err := q.ctx.Err(); err != nil {
			return nil, err
		}
		if m, err := q.pop(); m != nil || err != nil {
			return m, err
		}
		// Wait for a push, the deadline or stall gap, or a cancel. A wait
		// that ends at the context's own deadline needs no timer of its
		// own: an idle gather then holds none (about 200 B of heap), as
		// nc.RequestWithContext holds none.
		if d, ok := q.ctx.Deadline(); ok && !until.Before(d) {
			select {
			case <-q.signal:
				continue
			case <-q.ctx.Done():
				return nil, q.ctx.Err()
			}
		}
		// Otherwise the gather's timer, made once per pooled state and
		// reset for each wait.
		if q.timer == nil {
			q.timer = time.NewTimer(time.Until(until))
		} else {
			q.timer.Reset(time.Until(until))
		}
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

// counts returns how many replies were dropped and how many wait unread.
func (q *queue) counts() (dropped, unread int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if b := q.in; b != nil {
		return b.drop, len(b.msgs) - b.head
	}
	return 0, 0
}

// finish deregisters the gather and returns its final counts. Only the
// first call acts (it clears q.mux); later ones return zeros, which collect
// does not use.
func (q *queue) finish() (dropped, unread int) {
	if q.mux == nil {
		return 0, 0
	}
	dropped, unread = q.mux.deregister(q)
	q.mux = nil
	return dropped, unread
}

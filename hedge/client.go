// The requester side: a Client sends requests from one connection and gets
// every reply on one wildcard inbox of its own, so that it sees every reply,
// also the ones nobody takes any more (the losing copy of a hedged request,
// the answer to a request that timed out), and can count them.

package hedge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Policy chooses the requester-side patterns a Client applies to each
// request; its zero value sends one plain request.
type Policy struct {
	// Hedge sends a second copy of a request that has no reply after a
	// delay (hedge.go). Only for idempotent handlers: both copies may run.
	Hedge Hedge
	// Propagate writes each copy's deadline into DeadlineHeader
	// (deadline.go), so responders can skip expired work.
	Propagate bool
	// Retry, when not nil, sends the request again after a no-responders
	// status or a timeout, with exponential backoff and jitter, until the
	// overall deadline (retry.go). Only for idempotent handlers.
	Retry *Backoff
}

// Check returns an error wrapping nats.ErrInvalidArg if p is out of range:
// a negative Hedge.Delay, a Hedge.Percentile outside [0, 100) (0 means 95),
// or a Retry whose Base is not > 0, whose Max is below Base, or whose
// Attempt is negative.
func (p Policy) Check() error {
	h := p.Hedge
	if h.Delay < 0 || !(h.Percentile >= 0 && h.Percentile < 100) {
		return fmt.Errorf("hedge %+v: %w", h, nats.ErrInvalidArg)
	}
	if b := p.Retry; b != nil && (b.Base <= 0 || b.Max < b.Base || b.Attempt < 0) {
		return fmt.Errorf("retry backoff %+v: %w", *b, nats.ErrInvalidArg)
	}
	return nil
}

// Client sends requests with a Policy from one connection. Every copy of a
// request gets its own reply subject under the client's inbox,
// <inbox>.<call>.<copy>, and one wildcard subscription on <inbox>.> files
// each reply under its call: the first reply of a call is handed to the
// caller, and any other reply for it, sooner or later, is dropped and
// counted. Safe for concurrent use. Make one with NewClient.
//
// What it holds is bounded by what is in flight: a call per request
// waiting, and a denial watch per subject with a request (or a Guard)
// under way; besides, the last DeniedSubjects subjects the server denied.
type Client struct {
	nc     *nats.Conn
	sub    *nats.Subscription
	prefix string // the inbox, with a trailing dot
	policy Policy
	checks Checks // the denial checks (WithChecks), nil for none
	// observer sees each request's copies and end (WithObserver), nil
	// for none.
	observer Observer
	window   *Window // recent latencies, for an adaptive hedge

	// gone ends when the connection closes (its cause is
	// nats.ErrConnectionClosed) or Close is called (ErrClientClosed), and
	// with it every request and Await under way (bind).
	gone context.Context
	end  context.CancelCauseFunc
	// quit ends the close listener early: closed by Close when it leaves
	// no watch behind for the connection's close to stop.
	quit     chan struct{}
	quitOnce sync.Once

	// hedgeAfter starts the hedge delay; time.After unless a test replaces
	// it to decide itself when the delay is over.
	hedgeAfter func(time.Duration) <-chan time.Time
	// now and sleep are the client's clock, for the overall deadline and
	// the retry's waits: time.Now and Sleep unless a test replaces them.
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu      sync.Mutex
	watches map[string]*subjectWatch // the denial watches: subjects in flight, and denied
	kept    []*subjectWatch          // after Close: the denied subjects' watches, stopped at the connection's close
	denied  []string                 // the denied subjects kept, oldest first (≤ DeniedSubjects)
	next    uint64                   // the last call number handed out
	calls   map[uint64]*call         // calls still waiting for a reply
	seen    int64                    // replies filed under a call of ours (not statuses, not strays)
	waiters []seenWaiter             // WaitReplies calls waiting for seen to grow

	sent    atomic.Int64 // copies published: first copies, hedges and retries
	hedges  atomic.Int64 // of which hedges
	retries atomic.Int64 // of which retries
	dropped atomic.Int64 // replies that arrived and no caller took
	strays  atomic.Int64 // messages on the inbox that answer no call of ours
}

// call is one request waiting for its reply. Its replies queue in pending,
// which grows as needed, so the inbox handler never waits for a caller and
// a call may send as many copies (retries, hedges) as its deadline allows.
type call struct {
	// Under Client.mu: the replies (and no-responders statuses) not yet
	// looked at, in order of arrival, and the copies sent, numbered
	// 0..copies-1.
	pending []*nats.Msg
	copies  int
	// obs sees the call's copies and its end (WithObserver), nil for none;
	// set before the first copy, read by the caller's goroutine only.
	obs CallObserver
	// ready has a value when pending may have grown since the caller
	// last looked, or the call was denied.
	ready chan struct{}
	// subject the call requests, its watch, and, under Client.mu, denied:
	// the server's permissions violation once it denied publishing to
	// subject.
	subject string
	watch   *subjectWatch
	denied  error
	// header is the caller's headers, put on every copy (RequestMsg).
	header nats.Header
	// budget is when the caller's relative budget in header
	// (TimeoutHeader) runs out, counted from the call's start; zero
	// without one. Each copy carries what is left of it (spend).
	budget time.Time
}

// subjectWatch is a Client's watch for permission denials of publishes to
// one subject (Checks.Watch; none without Checks), shared by the requests
// and Guards to it under way: made by the first, stopped when the last
// ends, unless the subject was denied.
//
// Why one watch per subject in flight and not one per request: nats-server
// denies a publish by its subject alone (the requester's publish
// permission), so once one copy to a subject is denied every copy to it
// is, and one watch serves every call, hedge and retry under way: each
// violation of a copy sent before the first came back is taken by it, not
// printed. Why not one per subject for the client's life: a client lives
// as long as its service, and would hold one (in the Checks' process-wide
// dispatcher too) for every subject it ever asked.
type subjectWatch struct {
	subject string
	stop    func()
	// Under Client.mu: the calls and Guards using the watch; the first
	// violation, and done, closed with it; evicted: dropped from the
	// denied subjects kept, to stop once unused.
	users   int
	denied  error
	done    chan struct{}
	evicted bool
}

// DeniedSubjects is how many denied subjects a Client keeps: the last 64
// the server denied. A request to a subject kept fails at once without publishing,
// and the violations of copies sent before the denial came back are taken
// by its watch, not printed. 64 is far more than the few subjects one
// service requests; a client that asks more denied subjects than that
// forgets the oldest, whose next request is published again and denied
// within one round trip. The bound keeps a client that asks ever new
// subjects (a subject per customer, say) from growing without end.
const DeniedSubjects = 64

// ErrClientClosed is wrapped by the error of a request, or a Guard, under
// way when Client.Close is called.
var ErrClientClosed = errors.New("tail client closed")

// NewClient subscribes a fresh inbox of nc's (nc.NewInbox()) with one
// wildcard subscription and flushes it, so no reply can arrive before the
// server knows where to send it. With WithChecks, when the server's
// permissions deny the inbox (an inbox outside the user's prefix), the
// error wraps nats.ErrPermissionViolation (reqreply/denials' checks: and
// denials.ErrDenied, and says to connect with an inbox prefix the user may
// subscribe to), names it, within one round trip; without, such a client
// times out every request. Otherwise the error wraps the subscribe's or the
// flush's nats.go error (nats.ErrConnectionClosed, nats.ErrTimeout, ...).
// The client listens for nc's close (one status listener and one goroutine,
// until the close or Close), which ends every request under way. opts
// attach the hardening and the test clocks (Option). A Policy out of range
// (p.Check) is refused first, with an error wrapping nats.ErrInvalidArg.
func NewClient(nc *nats.Conn, p Policy, opts ...Option) (*Client, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	c := &Client{
		nc:         nc,
		prefix:     nc.NewInbox() + ".",
		policy:     p,
		window:     NewWindow(DefaultWindow),
		hedgeAfter: time.After,
		now:        time.Now,
		sleep:      Sleep,
		calls:      map[uint64]*call{},
		watches:    map[string]*subjectWatch{},
	}
	for _, o := range opts {
		o(c)
	}
	c.gone, c.end = context.WithCancelCause(context.Background())
	c.quit = make(chan struct{})
	// With Checks the subscription is checked (Checks.SubscribeChecked: a
	// flush, then a look for a violation on this exact subject), so an
	// inbox the user may not subscribe to (any inbox outside its prefix)
	// fails here, within one round trip, and not as every request's
	// timeout. Without, it is flushed.
	sub, err := c.subscribeChecked(func() (*nats.Subscription, error) {
		sub, err := nc.Subscribe(c.prefix+">", c.onReply)
		if err != nil {
			return nil, err
		}
		// nats.go's default pending limits (500,000 messages or 64 MiB)
		// drop replies under a burst; this inbox must see every one to
		// count them.
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			_ = sub.Unsubscribe()
			return nil, err
		}
		return sub, nil
	})
	if err != nil {
		c.end(ErrClientClosed)
		return nil, fmt.Errorf("client inbox %q: %w", c.prefix+">", err)
	}
	c.sub = sub
	// A close of the connection ends every request under way at once:
	// nats.go sends a closed inbox subscription nothing, and a request
	// would wait out its deadline. It also stops every denial watch left,
	// those Close keeps too: they are in the Checks' process-wide dispatcher,
	// and would hold the client for good. One listener and one goroutine
	// per client, ending with the connection, or with Close when it keeps
	// no watch.
	closed := nc.StatusChanged(nats.CLOSED)
	go func() {
		select {
		case <-closed:
			c.connClosed()
		case <-c.quit:
		}
		nc.RemoveStatusListener(closed)
	}()
	if nc.IsClosed() { // closed before the listener was registered
		c.connClosed()
	}
	return c, nil
}

// connClosed ends every request under way with nats.ErrConnectionClosed
// and stops every denial watch: no violation can come any more.
func (c *Client) connClosed() {
	c.end(nats.ErrConnectionClosed)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.watches {
		c.drop(w)
	}
	for _, w := range c.kept {
		w.stop()
	}
	c.kept, c.denied = nil, nil
}

// bind returns ctx, ended also, with its cause, when the client's
// connection closes or Close is called (c.gone), and the function that
// releases it.
func (c *Client) bind(ctx context.Context) (context.Context, func()) {
	bctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(c.gone, func() { cancel(context.Cause(c.gone)) })
	return bctx, func() { stop(); cancel(nil) }
}

// ended is the error of a request, or a Guard, whose (bound) ctx has
// ended: one wrapping nats.ErrConnectionClosed or ErrClientClosed when the
// connection or the client closed, nats.ErrTimeout at ctx's deadline, else
// ctx.Err() (context.Canceled).
func ended(ctx context.Context) error {
	if cause := context.Cause(ctx); errors.Is(cause, nats.ErrConnectionClosed) || errors.Is(cause, ErrClientClosed) {
		return cause
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nats.ErrTimeout
	}
	return ctx.Err()
}

// Close unsubscribes the client's inbox; replies that come later are
// dropped by the server. It does not close the connection. Requests and
// Guards still under way end at once with an error wrapping
// ErrClientClosed. The denial watches of subjects never denied end; those
// of the denied subjects kept (at most DeniedSubjects) stay until the
// connection closes (and with them the client's close listener), so that
// the violations of copies already sent when the first came back are
// still taken by them, not printed as stray errors after the run has
// reported the first.
func (c *Client) Close() error {
	c.end(ErrClientClosed)
	c.mu.Lock()
	for subject, w := range c.watches {
		if w.denied == nil || c.nc.IsClosed() {
			w.stop()
		} else {
			c.kept = append(c.kept, w)
		}
		delete(c.watches, subject)
	}
	c.denied = nil
	if len(c.kept) == 0 {
		c.quitOnce.Do(func() { close(c.quit) })
	}
	c.mu.Unlock()
	return c.sub.Unsubscribe()
}

// acquire returns subject's denial watch for one more user (a call or a
// Guard), registering it if the subject has none. c.mu is held.
func (c *Client) acquire(subject string) *subjectWatch {
	w := c.watches[subject]
	switch {
	case w != nil && c.checks != nil:
		// The watch may have been made before the caller set an error
		// handler of its own: chain the dispatcher in front of it again.
		c.checks.Rehook(c.nc)
	case w == nil:
		w = &subjectWatch{subject: subject, done: make(chan struct{}), stop: func() {}}
		// Registered before the first publish to subject: the violation
		// can come back at once. The Checks' dispatcher calls onDenied on
		// the connection's error handler goroutine, without its own lock
		// held.
		if c.checks != nil {
			w.stop = c.checks.Watch(c.nc, subject, func(err error) { c.onDenied(w, err) })
		}
		c.watches[subject] = w
	}
	w.users++
	return w
}

// release ends one user of w: the last stops it, unless its subject is one
// of the denied subjects kept. c.mu is held.
func (c *Client) release(w *subjectWatch) {
	w.users--
	if w.users == 0 && (w.denied == nil || w.evicted) {
		c.drop(w)
	}
}

// drop stops w and forgets it. c.mu is held.
func (c *Client) drop(w *subjectWatch) {
	w.stop()
	if c.watches[w.subject] == w {
		delete(c.watches, w.subject)
	}
}

// onDenied records that the server denied a publish to w's subject, keeps
// the subject among the denied ones (forgetting the oldest beyond
// DeniedSubjects), and ends every call waiting on it, at once: each
// returns err, whichever copy (first, hedge, retry) was denied, and sends
// no more copies.
func (c *Client) onDenied(w *subjectWatch, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.denied != nil || c.watches[w.subject] != w {
		// Denied already, or stopped (its users are over) as the
		// dispatcher handed it this.
		return
	}
	w.denied = fmt.Errorf("request %q: %w", w.subject, err)
	close(w.done)
	c.denied = append(c.denied, w.subject)
	if len(c.denied) > DeniedSubjects {
		old := c.watches[c.denied[0]]
		c.denied[0] = ""
		c.denied = c.denied[1:]
		if old != nil {
			old.evicted = true
			if old.users == 0 {
				c.drop(old)
			}
		}
	}
	for _, cl := range c.calls {
		if cl.watch == w && cl.denied == nil {
			cl.denied = w.denied
			select {
			case cl.ready <- struct{}{}:
			default:
			}
		}
	}
}

// Guard runs f with a context that also ends, within about one round
// trip, when the server denies a publish to subject (with WithChecks; its
// cause the error Request would return, wrapping
// nats.ErrPermissionViolation and naming subject), and when the client's
// connection or the client closes (its cause wraps
// nats.ErrConnectionClosed or ErrClientClosed). A subject denied already
// returns that error without running f. It is for a wait that goes with
// the requests to subject, a readiness wait before a load say: it shares
// the subject's denial watch with them. The error is f's.
func (c *Client) Guard(ctx context.Context, subject string, f func(ctx context.Context) error) error {
	c.mu.Lock()
	sw := c.acquire(subject)
	denied := sw.denied
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.release(sw)
		c.mu.Unlock()
	}()
	if denied != nil {
		return denied
	}
	ctx, unbind := c.bind(ctx)
	defer unbind()
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The watcher ends with pctx, which ends on return.
	go func() {
		select {
		case <-sw.done:
			c.mu.Lock()
			err := sw.denied
			c.mu.Unlock()
			cancel(err)
		case <-pctx.Done():
		}
	}()
	return f(pctx)
}

// seenWaiter is a WaitReplies call: done is closed once seen reaches n.
type seenWaiter struct {
	n    int64
	done chan struct{}
}

// onReply is the inbox handler: nats.go runs it on one goroutine, in order.
// A reply to a call still waiting is queued for its caller; a reply to a
// call that is over (a hedge's losing copy, a reply after a timeout) is
// dropped and counted; anything else on the inbox is a stray.
func (c *Client) onReply(msg *nats.Msg) {
	id, cp, ok := c.parseReply(msg.Subject)
	if !ok {
		c.strays.Add(1)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, waiting := c.calls[id]
	switch {
	case waiting && cp >= cl.copies:
		// A copy this call never sent: someone published to our inbox by
		// hand, and it must not reach the caller.
		c.strays.Add(1)
		return
	case !waiting && (id == 0 || id > c.next):
		// A call we never made.
		c.strays.Add(1)
		return
	case waiting:
		cl.pending = append(cl.pending, msg)
		select {
		case cl.ready <- struct{}{}:
		default: // the caller has been told already
		}
	default:
		c.countDropped(msg)
	}
	if isNoResponders(msg) {
		return
	}
	c.seen++
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if c.seen >= w.n {
			close(w.done)
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// countDropped counts msg as a reply nobody took, unless it is a status
// message (no responders), which carries no work done.
func (c *Client) countDropped(msg *nats.Msg) {
	if !isNoResponders(msg) {
		c.dropped.Add(1)
	}
}

// WaitReplies returns once the inbox has filed n replies in all (taken by
// their callers or dropped; statuses and strays do not count), or with
// ctx's error when it ends first, or at once with an error wrapping
// nats.ErrConnectionClosed (ErrClientClosed) when the connection (the
// client) closes first. After the responders have sent n replies
// and flushed them, it is what makes the counts final on a cluster too,
// where a reply may still be crossing a route when a flush of the
// client's own connection returns.
func (c *Client) WaitReplies(ctx context.Context, n int64) error {
	c.mu.Lock()
	if c.seen >= n {
		c.mu.Unlock()
		return nil
	}
	done := make(chan struct{})
	c.waiters = append(c.waiters, seenWaiter{n: n, done: done})
	c.mu.Unlock()
	var err error
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-c.gone.Done():
		err = context.Cause(c.gone)
	}
	// Given up: the waiter goes, unless it was just served.
	c.mu.Lock()
	c.waiters = slices.DeleteFunc(c.waiters, func(w seenWaiter) bool { return w.done == done })
	c.mu.Unlock()
	return fmt.Errorf("client: %d replies: %w", n, err)
}

// parseReply parses the call and copy numbers out of a reply subject,
// which must be exactly <inbox>.<call>.<copy>, both in decimal.
func (c *Client) parseReply(subject string) (id uint64, cp int, ok bool) {
	rest, ok := strings.CutPrefix(subject, c.prefix)
	if !ok {
		return 0, 0, false
	}
	num, cps, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, 0, false
	}
	id, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	cp, err = strconv.Atoi(cps) // also refuses a further token
	if err != nil || cp < 0 {
		return 0, 0, false
	}
	return id, cp, true
}

// open registers a new call to subject and returns its number; a call to a
// subject denied already starts denied.
func (c *Client) open(subject string) (uint64, *call) {
	cl := &call{ready: make(chan struct{}, 1), subject: subject}
	c.mu.Lock()
	cl.watch = c.acquire(subject)
	cl.denied = cl.watch.denied
	c.next++
	id := c.next
	c.calls[id] = cl
	c.mu.Unlock()
	return id, cl
}

// finish ends a call: replies still buffered for it, and any that come
// later, are dropped and counted; its subject's watch loses a user.
func (c *Client) finish(id uint64, cl *call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.calls, id)
	c.release(cl.watch)
	for _, msg := range cl.pending {
		c.countDropped(msg)
	}
	cl.pending = nil
}

// pop returns the call's oldest reply not yet looked at, if any, or the
// call's denial (then no reply).
func (c *Client) pop(cl *call) (*nats.Msg, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl.denied != nil {
		return nil, false, cl.denied
	}
	if len(cl.pending) == 0 {
		return nil, false, nil
	}
	msg := cl.pending[0]
	cl.pending[0] = nil
	cl.pending = cl.pending[1:]
	return msg, true, nil
}

// publish sends copy number cp of call id (cl): data on subject, reply
// subject <inbox>.<id>.<cp>, with the deadline in DeadlineHeader under
// Policy.Propagate. The call counts the copy before it leaves, so its reply
// is never taken for a forgery.
func (c *Client) publish(subject string, data []byte, id uint64, cl *call, cp int, kind CopyKind, deadline time.Time) error {
	c.mu.Lock()
	if cl.denied != nil {
		// Denied already: no copy of it would pass.
		c.mu.Unlock()
		return cl.denied
	}
	cl.copies = max(cl.copies, cp+1)
	c.mu.Unlock()
	msg := &nats.Msg{
		Subject: subject,
		Reply:   c.prefix + strconv.FormatUint(id, 10) + "." + strconv.Itoa(cp),
		Data:    data,
		Header:  cl.copyHeader(),
	}
	cl.spend(msg.Header, time.Now())
	if c.policy.Propagate {
		SetDeadline(msg, deadline)
	}
	if cl.obs != nil {
		bare := msg.Header == nil
		cl.obs.Copy(msg, cp, kind)
		if bare && !c.nc.HeadersSupported() {
			// What the observer added (a trace context) cannot travel on a
			// server without header support: the copy goes as it was.
			msg.Header = nil
		}
	}
	// Counted before it leaves, so whoever sees the copy sees the count.
	c.sent.Add(1)
	if err := c.nc.PublishMsg(msg); err != nil {
		c.sent.Add(-1)
		if kind == CopyRetry {
			// Counted when the retry was decided; it did not leave.
			c.retries.Add(-1)
		}
		if cl.obs != nil {
			cl.obs.Unsent(cp, err)
		}
		return fmt.Errorf("request %q: %w", subject, err)
	}
	return nil
}

// Request sends data on subject and returns the first reply, applying the
// client's Policy: hedging, deadline propagation and retries. ctx must
// carry a deadline: the overall deadline of the request, after which it
// fails with an error wrapping nats.ErrTimeout (also when a reply is taken
// at or after it, by the client's clock: the reply is dropped and
// counted); without one the error wraps nats.ErrInvalidArg at once. Other
// errors wrap:
//   - nats.ErrNoResponders when nobody subscribes to subject, at once; with
//     Policy.Retry, once the retries have spent the deadline,
//     ErrBudgetSpent, nats.ErrTimeout and the last attempt's error
//     (nats.ErrNoResponders or nats.ErrTimeout);
//   - nats.ErrPermissionViolation, naming subject (with WithChecks), within
//     about one round trip, when the server denies publishing to subject
//     (its permissions); so does every other call to subject then waiting,
//     whichever of its copies was denied, and every later one while the
//     subject is kept denied, at once and without publishing (see
//     subjectWatch, DeniedSubjects);
//   - nats.ErrConnectionClosed when the connection closes before or while
//     the request waits (for a reply, a hedge or a retry's backoff), at
//     once; ErrClientClosed likewise when Close is called;
//   - ctx.Err() (context.Canceled) when ctx is cancelled before its
//     deadline;
//   - the publish's nats.go error (nats.ErrMaxPayload, ...).
//
// A request that has ended leaves nothing behind: no subscription (every
// reply comes to the client's one inbox), no goroutine, and no state but
// the denied subjects kept.
//
// Whatever the policy, a caller gets at most one reply, and it is a reply
// to a copy of its own request: each copy's reply subject names its call
// and the copy, a reply is taken only for a copy the call sent, and the
// call is closed once the first reply is taken.
func (c *Client) Request(ctx context.Context, subject string, data []byte) (msg *nats.Msg, err error) {
	if _, ok := ctx.Deadline(); !ok {
		return nil, fmt.Errorf("request %q: the context needs a deadline: %w", subject, nats.ErrInvalidArg)
	}
	if gone := context.Cause(c.gone); gone != nil {
		return nil, fmt.Errorf("request %q: %w", subject, gone)
	}
	id, cl := c.open(subject)
	defer c.finish(id, cl)
	cl.header = headerOf(ctx)
	cl.budget = budgetEnd(cl.header, time.Now())
	ctx, unbind := c.bind(ctx)
	defer unbind()
	if c.observer != nil {
		if cl.obs = c.observer.Start(ctx, subject); cl.obs != nil {
			obs := cl.obs
			defer func() { obs.End(c.won(msg), err) }()
		}
	}
	if c.policy.Retry != nil {
		return c.retry(ctx, subject, data, id, cl)
	}
	deadline, _ := ctx.Deadline()
	msg, _, err = c.attempt(ctx, deadline, subject, data, id, cl, 0, CopyFirst)
	return msg, err
}

// won is the number of the copy msg answers, -1 for no reply.
func (c *Client) won(msg *nats.Msg) int {
	if msg == nil {
		return -1
	}
	if _, cp, ok := c.parseReply(msg.Subject); ok {
		return cp
	}
	return -1
}

// attempt is one try at call id: it sends copy number first of the request,
// hedged under Policy.Hedge, and waits until ctx's deadline (the attempt's,
// under a retry). It returns the first reply and how many copies it sent. A
// retry is another attempt on the same call, numbering its copies after the
// earlier ones, so that a late reply to an earlier attempt is taken too: the
// caller waits for an answer, not for a particular copy. So every copy
// carries the call's overall deadline (Policy.Propagate), and a reply counts
// when the clock (c.now) says it was taken before that: when a reply and
// the deadline are ready together, which one the select picks is up to the
// scheduler, and a reply taken at or after the deadline is dropped and
// counted, and the attempt times out, whichever it picked.
func (c *Client) attempt(ctx context.Context, overall time.Time, subject string, data []byte, id uint64, cl *call, first int, kind CopyKind) (*nats.Msg, int, error) {
	start := time.Now()
	if err := c.publish(subject, data, id, cl, first, kind, overall); err != nil {
		return nil, 1, err
	}
	copies, statuses := 1, 0
	// The hedge: a channel that fires after the delay, or nil (never);
	// hedgeDue once it has fired and the hedge is not sent yet.
	var hedge <-chan time.Time
	hedgeDue := false
	if d, ok := c.hedgeDelay(); ok {
		hedge = c.hedgeAfter(d)
	}
	for {
		// Look at every reply that has come, also one an earlier attempt
		// left, before waiting again.
		for {
			msg, ok, err := c.pop(cl)
			if err != nil {
				return nil, copies, err
			}
			if !ok {
				break
			}
			if isNoResponders(msg) {
				// This copy found nobody; fail only when every copy this
				// attempt sent has (an earlier attempt's status is old news).
				if _, cp, ok := c.parseReply(msg.Subject); ok && cp >= first {
					statuses++
				}
				if statuses == copies {
					return nil, copies, fmt.Errorf("request %q: %w", subject, nats.ErrNoResponders)
				}
				continue
			}
			if !c.now().Before(overall) {
				c.countDropped(msg)
				return nil, copies, fmt.Errorf("request %q: %w", subject, nats.ErrTimeout)
			}
			c.window.Add(time.Since(start))
			return msg, copies, nil
		}
		// The delay is over and no reply has come, not even one that
		// arrived while the select chose the timer: send the hedge.
		if hedgeDue {
			hedgeDue = false
			c.hedges.Add(1)
			if err := c.publish(subject, data, id, cl, first+copies, CopyHedge, overall); err != nil {
				c.hedges.Add(-1)
				return nil, copies, err
			}
			copies++
		}
		select {
		case <-cl.ready:
		case <-hedge:
			hedge, hedgeDue = nil, true
		case <-ctx.Done():
			return nil, copies, fmt.Errorf("request %q: %w", subject, ended(ctx))
		}
	}
}

// ClientStats are a client's counters.
type ClientStats struct {
	// Sent copies of requests in all: first copies, Hedges and Retries.
	Sent, Hedges, Retries int64
	// Dropped replies arrived and no caller took them: the losing copy of a
	// hedge, the reply to a request that had timed out.
	Dropped int64
	// Strays are messages on the inbox that answer no request of ours.
	Strays int64
}

// Stats returns the client's counters now; after Settle they are final.
func (c *Client) Stats() ClientStats {
	return ClientStats{
		Sent: c.sent.Load(), Hedges: c.hedges.Load(), Retries: c.retries.Load(),
		Dropped: c.dropped.Load(), Strays: c.strays.Load(),
	}
}

// Settle returns once every reply that reached the server before the call
// has been through the inbox handler: a flush, then a nats.go Barrier.
// Without a deadline on ctx it waits at most SettleTimeout (5 s). The
// error is ctx's, or the flush's.
func (c *Client) Settle(ctx context.Context) error {
	cancel := context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		// nats.go's FlushWithContext needs one.
		ctx, cancel = context.WithTimeout(ctx, SettleTimeout)
	}
	defer cancel()
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("client settle: %w", err)
	}
	done := make(chan struct{})
	if err := c.nc.Barrier(func() { close(done) }); err != nil {
		return fmt.Errorf("client settle: %w", err)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("client settle: %w", ctx.Err())
	}
}

package main

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
	"github.com/nats-io/nats.go/micro"

	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/respond"
)

// This file is the requester side: it sends a number of requests, a fixed
// number in flight at once, collects every reply on one inbox of its own,
// and keeps enough of each to prove that every request was answered exactly
// once and to say by whom and how fast.
//
// The counts obey two conservation laws, which the tests check against the
// responders' own counts (stress_test.go):
//
//   - Requests: every request ends in exactly one bucket,
//     Answered + TimedOut + Failed + Unsent = Requests. A run that returns no
//     error has Unsent == 0, and Failed counts only requests the server
//     answered with no responders or nats.go refused to buffer while
//     reconnecting; a run without those has Answered + TimedOut = Requests.
//   - Replies: every message on the inbox that answers an attempt that was
//     sent is exactly one of: counted (Replies, credited to its member, also
//     when its request later timed out and was retried), a Duplicate, or
//     Late; a no-responders status from the server that fails its request
//     is none of these (one that comes after its attempt ended is Late), and
//     a message that answers nothing sent is a Stray.
//     So, once the members have settled, the replies the members sent are
//     Replies + Duplicates + Late.
//
// Exact (the "verified" line) holds only when each request was answered by
// exactly the replies it waits for, counting every attempt: a reply that came
// in time for the first attempt of a request that was then retried counts,
// so a retry that makes one responder answer the same request twice shows up
// in Repeated and the run is not exact.

// DefaultTimeout is how long a request waits for its reply unless told: 1 s.
const DefaultTimeout = time.Second

// LoadConfig is one run of requests.
type LoadConfig struct {
	// Subject the requests are published on.
	Subject string
	// Requests to send, numbered 1..Requests (≥ 1). A request's payload is
	// its number in decimal.
	Requests int
	// Concurrency is how many requests are in flight at once (≥ 1); more
	// than Requests is allowed and means all of them at once.
	Concurrency int
	// Timeout is how long one attempt of a request waits for its replies
	// (> 0), by the clock: a reply that arrives after it is late. A retry
	// waits as long again.
	Timeout time.Duration
	// Replies each request waits for: 1 (the default when 0) for one queue
	// group; n to gather one reply from each of n groups on the subject.
	Replies int
	// Retry re-sends a request that timed out or failed, once, on a fresh
	// reply subject: a timed-out one at once, a failed one (no responders,
	// or refused while reconnecting) when its timeout would have passed, so
	// members have time to come back. The first copy may have been handled
	// even though its reply never came, so a retried request can run twice:
	// only safe when the handler is idempotent.
	Retry bool
	// PerRequest keeps who answered each request (Result.PerRequest) also
	// when Replies is 1; it costs about 40 bytes per request.
	PerRequest bool
	// Header is sent on the first copy of request number 1 only (nil:
	// none): the trace header of -msgtrace (cli.Traced.Header).
	Header nats.Header

	// At and Before change the group mid-run: Before runs once, just before
	// request number At (1..Requests) is sent. Requests numbered At and
	// later wait until it returns; those sent earlier may still be in
	// flight. An error from Before ends the run with that error.
	At     int
	Before func(ctx context.Context) error
	// BeforeRetry, with Retry, runs once before the first retry is sent: a
	// place to wait until a dead member is known to be gone.
	BeforeRetry func(ctx context.Context) error
	// Settle, if set, runs after the last request has its replies or timed
	// out and before duplicates are counted: the place to make sure every
	// reply the members sent has reached the server (Member.Settle). Its
	// context ends after max(Timeout, 2 s) + 5 s; running out of time, or
	// an error wrapping nats.ErrConnectionReconnecting, sets
	// Result.Unsettled instead of failing the run.
	Settle func(ctx context.Context) error
}

// Result is what a load run saw. Its counts obey the conservation laws in
// this file's comment: Answered + TimedOut + Failed + Unsent = Requests, and
// the replies the members sent are Replies + Duplicates + Late.
type Result struct {
	// Requests the run was asked to send.
	Requests int
	// Answered requests got all their replies within their timeout, first
	// time or on the retry (error replies included: see Errors).
	Answered int
	// Retried requests timed out or failed once and were sent again (with
	// Retry).
	Retried int
	// RetryAnswered of the Retried requests were answered the second time.
	RetryAnswered int
	// TimedOut requests never got all their replies within their timeout.
	TimedOut int
	// Failed requests ended without their replies and without waiting out
	// their timeout: the server answered no responders (nobody subscribed
	// any more, or not yet again after a reconnect), nats.go refused the
	// publish while reconnecting (nats.ErrReconnectBufExceeded), or, in a
	// run that ended early with an error, they were still in flight.
	Failed int
	// Unsent requests were never sent: the run ended early with an error
	// (ctx ended, the connection closed, ...). 0 in a run without error.
	Unsent int
	// Replies counted: each came in time for an attempt still waiting, and
	// is credited to its member (MemberStats); this includes replies to a
	// first attempt that later timed out. The sum of the members' counts.
	Replies int
	// Errors of the counted Replies were error replies: they carried the
	// Nats-Service-Error header (a handler that failed or panicked).
	Errors int
	// Repeated requests got more counted replies than they wait for, over
	// all their attempts: a retried request whose first attempt got some of
	// its replies in time, so someone answered it twice.
	Repeated int
	// Duplicates are replies to an attempt that already had all the replies
	// it waits for.
	Duplicates int
	// Late replies came after their attempt had timed out or failed, by the
	// clock, and were not counted; with Retry such a request ran twice.
	Late int
	// Strays are messages on the requester's inbox that answer no request
	// it sent (published there by someone else); they are not counted
	// anywhere else.
	Strays int
	// Unsettled is set when counting ended before every reply could come:
	// members were still working through queued requests (Settle ran out
	// of time), or a member or the requester was disconnected at the end.
	// Replies sent later are not counted as late or duplicate.
	Unsettled bool
	// Elapsed is the time from the first request sent to the last answered
	// or timed out.
	Elapsed time.Duration
	// Members is what each responder did, in order of first reply.
	Members []*MemberStats
	// PerRequest[i] lists, for request number i+1, the members whose
	// replies counted, over every attempt, in order of arrival. Filled
	// only when a request waits for more than one reply
	// (LoadConfig.Replies > 1) or LoadConfig.PerRequest is set.
	PerRequest [][]string
}

// MemberStats is one responder's share of a load run.
type MemberStats struct {
	// Name is the reply's payload: the member's name.
	Name string
	// Latencies of the replies it sent that counted, ascending: from the
	// request's publish to its reply's arrival.
	Latencies []time.Duration
	// Errors of its counted replies were error replies.
	Errors int
}

// Count is how many counted replies the member sent.
func (s *MemberStats) Count() int { return len(s.Latencies) }

// Throughput is answered requests per second of Elapsed.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Answered) / r.Elapsed.Seconds()
}

// Exact reports whether every request was answered exactly once, retries
// included: every request answered, none by an error reply, none answered
// by more replies than it waits for over all its attempts (Repeated), and
// no duplicate or late reply. A run with retries whose counting ended
// before every reply could come (Unsettled) is not exact: a member still
// busy or disconnected may yet answer a first attempt that was retried,
// so the request would have run twice.
func (r *Result) Exact() bool {
	return r.Answered == r.Requests && r.Errors == 0 && r.Repeated == 0 && r.Duplicates == 0 && r.Late == 0 &&
		!(r.Unsettled && r.Retried > 0)
}

// Member returns the stats of the member named name, or nil.
func (r *Result) Member(name string) *MemberStats {
	for _, m := range r.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Check validates cfg; the error wraps nats.ErrInvalidArg or
// nats.ErrBadSubject.
func (cfg *LoadConfig) Check() error {
	switch {
	case cfg.Subject == "" || strings.ContainsAny(cfg.Subject, " \t\r\n"):
		return fmt.Errorf("load: subject %q: %w", cfg.Subject, nats.ErrBadSubject)
	case cfg.Requests < 1:
		return fmt.Errorf("load: requests %d must be ≥ 1: %w", cfg.Requests, nats.ErrInvalidArg)
	case cfg.Concurrency < 1:
		return fmt.Errorf("load: concurrency %d must be ≥ 1: %w", cfg.Concurrency, nats.ErrInvalidArg)
	case cfg.Timeout <= 0:
		return fmt.Errorf("load: timeout %v must be > 0: %w", cfg.Timeout, nats.ErrInvalidArg)
	case cfg.Replies < 0:
		return fmt.Errorf("load: replies %d must be ≥ 1: %w", cfg.Replies, nats.ErrInvalidArg)
	case cfg.Before != nil && (cfg.At < 1 || cfg.At > cfg.Requests):
		return fmt.Errorf("load: At %d must be in 1..%d: %w", cfg.At, cfg.Requests, nats.ErrInvalidArg)
	}
	return nil
}

// Request states, in slot.state. The zero value is unsent, so a reply for a
// request not yet published is told apart from one for a pending request.
const (
	unsent = iota
	pending
	answered
	timedOut
	failed
)

// slot is one request's state, shared by the publisher, the inbox handler
// that receives its replies, and the watchdog that times it out.
type slot struct {
	mu       sync.Mutex
	attempt  int       // 0, or 1 for the retry
	state    int       // unsent, pending, answered, timedOut, failed
	sent     time.Time // publish time of the current attempt
	deadline time.Time // when the current attempt times out
	got      int       // replies counted for the current attempt
	replies  []reply   // every counted reply, all attempts, in order
	first    [1]reply  // room for the first, so most requests allocate nothing
}

// reply is one counted reply: who sent it, how long it took, and whether
// it was an error reply.
type reply struct {
	member  int32 // index into loader.names
	isError bool
	latency time.Duration
}

// loader is the state of one Load run.
type loader struct {
	cfg    LoadConfig
	nc     *nats.Conn
	want   int    // replies per request
	prefix string // the inbox; replies come to <prefix>.<attempt>.<number>
	slots  []slot
	// window holds a token for each request that may still be sent: the
	// publisher takes one per request, and it comes back when the request
	// is answered or ends for good. Cap: min(Concurrency, Requests).
	window chan struct{}
	// expiry lists every published attempt in order of its deadline, for
	// the watchdog.
	expiry expiryQueue
	// remaining counts the requests not yet answered or ended for good;
	// allDone closes when it reaches 0.
	remaining atomic.Int64
	allDone   chan struct{}
	fail      context.CancelCauseFunc
	ctx       context.Context // the run's, which fail ends
	// checked is set once a publish to the subject is known to have been
	// allowed (checkPublish).
	checked   atomic.Bool
	retryOnce sync.Once
	retryErr  error

	// mu guards the counts below, kept by the inbox handler (which nats.go
	// runs on one goroutine) and read by result, which may run while a
	// handler call is still under way when a run ends early.
	mu         sync.Mutex
	names      []string
	index      map[string]int32
	counted    bool // some reply has been counted
	duplicates int
	late       int
	strays     int  // messages on the inbox that answer no request sent
	unsettled  bool // Settle ran out of time
}

// Load sends cfg.Requests requests on cfg.Subject from nc, with at most
// cfg.Concurrency in flight at once, and returns what came back.
//
// It is built for measuring: one publisher sends requests while a window
// of cfg.Concurrency allows, each answer (or final timeout) letting the next
// one out, so C requests are in flight without C goroutines blocked in
// nc.Request. All replies come to one inbox of nc's, subscribed and flushed
// before the first request so none can be missed, each request on a reply
// subject of its own (<inbox>.<attempt>.<number>): the inbox sees every
// reply, duplicates and late ones too, not only the first as nc.Request
// would. A watchdog times requests out in the order they were sent, which
// is the order of their deadlines; a reply is in time only if it arrives
// before its attempt's deadline by the clock. After the last request Load
// runs cfg.Settle, then drains the inbox, which returns once every reply
// that had reached the server is counted.
//
// Under a server's permissions, the inbox subscription is checked as it is
// flushed (denials.SubscribeChecked), and the first request is sent alone and
// flushed too, once per run (checkPublish), while a watch
// (denials.Watch) claims the violations on the subject: a denied inbox
// or publish ends the run within one round trip, with one error and no
// printed line, and the requests after the first pay nothing for it.
//
// While nc is disconnected, nats.go buffers the requests (its reconnect
// buffer, 8 MiB by default) and they time out by the clock like any other,
// so the run goes on and counts them; a publish the full buffer refuses
// fails its request at once (Result.Failed). If nc is still disconnected
// when the last request ends, the inbox is not drained (a drain waits for a
// server) and the counts stand, marked Result.Unsettled. If nc closes for
// good (nats.go gave up reconnecting), the run ends at once.
//
// Load keeps about 100 bytes per request, and a queue entry (40 bytes) for
// each request sent within the last cfg.Timeout, in an array of at most
// about twice the most of those there have been at once.
//
// A timed-out request is counted, not an error; with cfg.Retry it is sent
// once more. Errors, each wrapped with the subject: nats.ErrInvalidArg or
// nats.ErrBadSubject for a bad cfg (nothing is sent); nats.ErrNoResponders
// when the first answer of the run is the server's no-responders status
// (status 503: nobody subscribes to the subject at all; the run stops
// there; a later one fails only its request, see Result.Failed; servers
// without header support never send it, so there the requests time out);
// ctx's error when it ends first; nats.ErrConnectionClosed when nc closes
// during the run; the error of cfg.Before, cfg.BeforeRetry or cfg.Settle;
// nats.ErrTimeout if the inbox does not drain within cli.DrainTimeout (5 s);
// nats.ErrPermissionViolation (and denials.ErrDenied), with the server's text,
// which names the subject, when the server's permissions deny the inbox
// subscription or the requests' publish: within one round trip, before any
// other request is sent (see checkPublish); nats.go's publish or subscribe
// errors. With an error that comes after the
// first request was sent, Load also returns the counts so far (Unsent says
// how many were never sent); otherwise the Result is nil.
func Load(ctx context.Context, nc *nats.Conn, cfg LoadConfig) (*Result, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	rctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	l := &loader{
		cfg:     cfg,
		nc:      nc,
		want:    max(cfg.Replies, 1),
		prefix:  nc.NewInbox(),
		slots:   make([]slot, cfg.Requests),
		window:  make(chan struct{}, min(cfg.Concurrency, cfg.Requests)),
		allDone: make(chan struct{}),
		fail:    fail,
		ctx:     rctx,
		index:   map[string]int32{},
	}
	for range cap(l.window) {
		l.window <- struct{}{}
	}
	l.remaining.Store(int64(cfg.Requests))
	l.expiry.init()

	// One subscription takes every reply. Flush, so the server knows it
	// before the first request goes out, and look for a permissions
	// violation on this exact subject (denials.SubscribeChecked): an inbox the
	// server denies ends the run here, before anything is sent.
	sctx, cancel := context.WithTimeout(rctx, cli.SetupTimeout(cfg.Timeout))
	inbox, err := denials.SubscribeChecked(sctx, nc, l.prefix+".*.*", "", func() (*nats.Subscription, error) {
		sub, err := nc.Subscribe(l.prefix+".*.*", l.onReply)
		if err != nil {
			return nil, err
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			_ = sub.Unsubscribe() // the limits error says what went wrong
			return nil, err
		}
		return sub, nil
	})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("load %q: inbox: %w", cfg.Subject, err)
	}

	// A denied publish ends the run as soon as the server says so. The
	// watch claims every violation on a publish to the subject while the
	// run lasts, so none is printed besides the run's error; and the first
	// request is sent alone and checked (see checkPublish), so at most one
	// is denied.
	stopWatch := denials.Watch(nc, func(err error) {
		l.fail(fmt.Errorf("load %q: %w", cfg.Subject, err))
	}, []string{cfg.Subject}, nil)
	defer stopWatch()

	// A connection that closes for good (nats.go gave up reconnecting, or
	// someone closed it) ends the run at once: nothing more can come.
	closed := nc.StatusChanged(nats.CLOSED)
	defer nc.RemoveStatusListener(closed)
	var watching sync.WaitGroup
	watching.Go(func() {
		select {
		case <-closed:
			l.fail(fmt.Errorf("load %q: %w", cfg.Subject, nats.ErrConnectionClosed))
		case <-rctx.Done():
		}
	})
	if nc.IsClosed() {
		l.fail(fmt.Errorf("load %q: %w", cfg.Subject, nats.ErrConnectionClosed))
	}

	// The watchdog times requests out while the publisher sends them.
	watching.Go(func() { l.watch(rctx) })
	start := time.Now()
	l.publishAll(rctx)
	select {
	case <-l.allDone:
	case <-rctx.Done():
	}
	elapsed := time.Since(start)
	failure := context.Cause(rctx) // nil unless the run failed or ctx ended
	fail(nil)                      // stops the watchdog
	watching.Wait()
	if failure != nil {
		_ = inbox.Unsubscribe() // the run's own error is the one to report
		if ctx.Err() != nil {
			failure = fmt.Errorf("load %q: %w", cfg.Subject, ctx.Err())
		}
		return l.result(elapsed), failure
	}

	// Let the members' last replies reach the server, then drain the inbox:
	// its flush brings every reply the server has for us, and its close
	// comes after the handler has counted each of them.
	// A member with a backlog (a slow one) may take longer than a request's
	// timeout to work through it; the counts are still worth reporting, so
	// running out of time here is noted, not an error.
	if cfg.Settle != nil {
		sctx, cancel := context.WithTimeout(ctx, cli.SetupTimeout(cfg.Timeout)+cli.DrainTimeout)
		err := cfg.Settle(sctx)
		cancel()
		switch {
		case err == nil:
		case (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrConnectionReconnecting)) && ctx.Err() == nil:
			// Still busy, or disconnected: what they send later is not
			// counted.
			l.setUnsettled()
		default:
			_ = inbox.Unsubscribe() // the settle error says what went wrong
			return l.result(elapsed), fmt.Errorf("load %q: settle: %w", cfg.Subject, err)
		}
	}
	// A connection that is reconnecting cannot drain (the drain's flush
	// waits for a server): nothing more can arrive until it is back, and
	// what arrives then is late, so the counts stand as they are.
	if !nc.IsConnected() {
		_ = inbox.Unsubscribe() // the counts are final either way
		l.setUnsettled()
		return l.result(elapsed), nil
	}
	subClosed := inbox.StatusChanged(nats.SubscriptionClosed)
	if err := inbox.Drain(); err != nil {
		return l.result(elapsed), fmt.Errorf("load %q: drain inbox: %w", cfg.Subject, err)
	}
	drainLimit := time.NewTimer(cli.DrainTimeout)
	defer drainLimit.Stop()
	select {
	case <-subClosed:
	case <-closed:
		// Closed for good while draining: nats.go reports no closed
		// subscription then, and what had not reached the handler is
		// dropped, so the counts stand, short of what may have come.
		l.setUnsettled()
		return l.result(elapsed), fmt.Errorf("load %q: drain inbox: %w", cfg.Subject, nats.ErrConnectionClosed)
	case <-drainLimit.C:
		_ = inbox.Unsubscribe() // the counts are final either way
		if !nc.IsConnected() {
			// Disconnected while draining, as above.
			l.setUnsettled()
			return l.result(elapsed), nil
		}
		return l.result(elapsed), fmt.Errorf("load %q: drain inbox: not done within %v: %w", cfg.Subject, cli.DrainTimeout, nats.ErrTimeout)
	case <-ctx.Done():
		return l.result(elapsed), fmt.Errorf("load %q: drain inbox: %w", cfg.Subject, ctx.Err())
	}
	return l.result(elapsed), nil
}

// publishAll is the publisher: request after request, each when the window
// has room, running cfg.Before just before request cfg.At.
func (l *loader) publishAll(ctx context.Context) {
	payload := make([]byte, 0, 20)
	for n := 1; n <= l.cfg.Requests; n++ {
		// An ended run sends nothing more, though the window has room
		// (select would pick either at random).
		if ctx.Err() != nil {
			return
		}
		select {
		case <-l.window:
		case <-ctx.Done():
			return
		}
		// The mid-run change: the requests before it may be in flight,
		// the ones after it are not sent until it returns.
		if l.cfg.Before != nil && n == l.cfg.At {
			if err := l.cfg.Before(ctx); err != nil {
				l.fail(fmt.Errorf("load %q: before request %d: %w", l.cfg.Subject, n, err))
				return
			}
		}
		payload = strconv.AppendInt(payload[:0], int64(n), 10)
		if err := l.publish(n, 0, payload); err != nil {
			l.fail(err)
			return
		}
	}
}

// publish sends attempt (0, or 1 for the retry) of request n and hands it
// to the watchdog. A publish that nats.go refuses only because its
// reconnect buffer is full fails the request, not the run; any other
// publish error is returned and ends the run.
func (l *loader) publish(n, attempt int, payload []byte) error {
	s := &l.slots[n-1]
	s.mu.Lock()
	s.attempt = attempt
	s.state = pending
	s.got = 0
	if s.replies == nil {
		s.replies = s.first[:0]
	}
	s.sent = time.Now()
	s.deadline = s.sent.Add(l.cfg.Timeout)
	deadline := s.deadline
	s.mu.Unlock()
	reply := l.prefix + "." + strconv.Itoa(attempt) + "." + strconv.Itoa(n)
	var before error
	check := !l.checked.Load()
	if check {
		before = l.nc.LastError()
	}
	var err error
	if n == 1 && attempt == 0 && l.cfg.Header != nil {
		err = l.nc.PublishMsg(&nats.Msg{Subject: l.cfg.Subject, Reply: reply, Data: payload, Header: l.cfg.Header})
	} else {
		err = l.nc.PublishRequest(l.cfg.Subject, reply, payload)
	}
	switch {
	case err == nil:
		if check {
			l.checkPublish(before)
		}
	case errors.Is(err, nats.ErrReconnectBufExceeded):
		// Disconnected, and the buffer that holds publishes until the
		// reconnect is full: this request fails, the run goes on.
		s.mu.Lock()
		s.state = failed
		s.mu.Unlock()
		if !l.retries(attempt) {
			l.done()
			return nil
		}
	default:
		return fmt.Errorf("load %q: request %d: %w", l.cfg.Subject, n, err)
	}
	l.expiry.push(expiring{n: n, attempt: attempt, deadline: deadline})
	return nil
}

// checkPublish is run after the first request of a run is published, and
// makes sure the server's permissions allow it before another goes out: a
// flush, after which a denial has been read (the server handles a
// connection's protocol in order, so its -ERR comes before the PONG). The
// run's watch (denials.Watch) then ends the run with it, on nats.go's
// error-handler goroutine; here the publisher waits for that, at most
// cli.SetupTimeout, when the connection's last error shows a new violation on
// a publish to the subject. Had the requests gone on, the server would
// deny each of them, and a violation arriving after the run had ended
// would be printed: more lines for one fault. Once one publish is allowed,
// every later one to the subject is, and the check costs the run one round
// trip in all, not one per request. While the connection is down, or if
// the flush fails, the check is left to the next request.
func (l *loader) checkPublish(before error) {
	if l.nc.Status() != nats.CONNECTED {
		return
	}
	limit := cli.SetupTimeout(l.cfg.Timeout)
	fctx, cancel := context.WithTimeout(l.ctx, limit)
	err := l.nc.FlushWithContext(fctx)
	cancel()
	if err != nil {
		return
	}
	last := l.nc.LastError()
	if last == nil || last == before || !errors.Is(last, nats.ErrPermissionViolation) ||
		!strings.Contains(last.Error(), `Publish to "`+l.cfg.Subject+`"`) {
		l.checked.Store(true)
		return
	}
	// Denied: the watch ends the run as soon as the handler runs.
	wait := time.NewTimer(limit)
	defer wait.Stop()
	select {
	case <-l.ctx.Done():
	case <-wait.C:
	}
}

// retries reports whether a failed or timed-out attempt is sent again.
func (l *loader) retries(attempt int) bool { return l.cfg.Retry && attempt == 0 }

// done ends a request for good: its token goes back to the window, and the
// last one closes allDone.
func (l *loader) done() {
	l.window <- struct{}{}
	if l.remaining.Add(-1) == 0 {
		close(l.allDone)
	}
}

// onReply is the inbox handler: it files each message under its request,
// in exactly one bucket.
func (l *loader) onReply(m *nats.Msg) {
	now := time.Now()
	n, attempt, ok := l.parse(m.Subject)
	if !ok {
		// Not one of ours (someone published to the inbox by hand).
		l.count(&l.strays)
		return
	}
	s := &l.slots[n-1]
	s.mu.Lock()
	switch {
	case s.state == unsent || attempt > s.attempt:
		// Not an answer to anything sent: someone published to the inbox
		// by hand. Counting it would hand a window token back twice.
		s.mu.Unlock()
		l.count(&l.strays)
	case attempt != s.attempt || s.state == timedOut || s.state == failed || (s.state == pending && now.After(s.deadline)):
		// The answer to an attempt that had already ended, or whose
		// deadline has passed by the clock though the watchdog has not
		// got to it yet.
		s.mu.Unlock()
		l.count(&l.late)
	case s.state != pending:
		// More replies than the attempt waits for.
		s.mu.Unlock()
		l.count(&l.duplicates)
	case respond.IsNoResponders(m):
		// The server's no-responders status: nobody subscribes at all. As
		// the run's first answer it ends the run (wrong subject, nobody
		// started); later, members are gone or not back yet after a
		// reconnect, and only this request fails.
		l.mu.Lock()
		first := !l.counted
		l.mu.Unlock()
		s.state = failed
		s.mu.Unlock()
		switch {
		case first:
			l.fail(fmt.Errorf("load %q: request %d: %w", l.cfg.Subject, n, nats.ErrNoResponders))
		case !l.retries(attempt):
			l.done()
		}
		// With a retry, the watchdog re-sends it at its deadline.
	default:
		l.mu.Lock()
		member := l.intern(m.Data)
		l.counted = true
		l.mu.Unlock()
		s.replies = append(s.replies, reply{member: member, isError: m.Header.Get(micro.ErrorHeader) != "", latency: now.Sub(s.sent)})
		s.got++
		complete := s.got == l.want
		if complete {
			s.state = answered
		}
		s.mu.Unlock()
		if complete {
			l.done()
		}
	}
}

// setUnsettled notes that replies may still come after counting ended.
func (l *loader) setUnsettled() {
	l.mu.Lock()
	l.unsettled = true
	l.mu.Unlock()
}

// count adds one to a count kept under l.mu.
func (l *loader) count(c *int) {
	l.mu.Lock()
	*c++
	l.mu.Unlock()
}

// watch is the watchdog: it takes published attempts in deadline order,
// skips those already answered or ended, waits out the deadline of one
// still pending, and times it out if it still is. With cfg.Retry an
// attempt 0 that timed out or failed is sent again, once, and keeps its
// place in the window.
func (l *loader) watch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		e, ok := l.expiry.pop(ctx)
		if !ok {
			return
		}
		if !l.watched(e) {
			continue
		}
		if wait := time.Until(e.deadline); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		s := &l.slots[e.n-1]
		s.mu.Lock()
		ended := false
		if s.attempt == e.attempt {
			switch s.state {
			case pending:
				s.state, ended = timedOut, true
			case failed:
				ended = l.retries(e.attempt) // waiting for its retry
			}
		}
		s.mu.Unlock()
		if !ended {
			continue
		}
		if !l.retries(e.attempt) {
			l.done()
			continue
		}
		if err := l.beforeRetry(ctx); err != nil {
			l.fail(fmt.Errorf("load %q: before retry: %w", l.cfg.Subject, err))
			return
		}
		if err := l.publish(e.n, 1, strconv.AppendInt(nil, int64(e.n), 10)); err != nil {
			l.fail(err)
			return
		}
	}
}

// watched reports whether attempt e still needs the watchdog: it waits for
// its replies, or failed and waits for its retry.
func (l *loader) watched(e expiring) bool {
	s := &l.slots[e.n-1]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempt == e.attempt && (s.state == pending || (s.state == failed && l.retries(e.attempt)))
}

// beforeRetry runs cfg.BeforeRetry once, before the first retry.
func (l *loader) beforeRetry(ctx context.Context) error {
	l.retryOnce.Do(func() {
		if l.cfg.BeforeRetry != nil {
			l.retryErr = l.cfg.BeforeRetry(ctx)
		}
	})
	return l.retryErr
}

// parse reads <prefix>.<attempt>.<number> from a reply subject.
func (l *loader) parse(subject string) (n, attempt int, ok bool) {
	rest, found := strings.CutPrefix(subject, l.prefix+".")
	if !found {
		return 0, 0, false
	}
	a, num, found := strings.Cut(rest, ".")
	if !found || (a != "0" && a != "1") {
		return 0, 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > len(l.slots) {
		return 0, 0, false
	}
	return n, int(a[0] - '0'), true
}

// intern returns the index of the member named by a reply's payload; l.mu
// is held.
func (l *loader) intern(name []byte) int32 {
	if i, ok := l.index[string(name)]; ok {
		return i
	}
	i := int32(len(l.names))
	l.names = append(l.names, string(name))
	l.index[string(name)] = i
	return i
}

// result adds up the slots: once the inbox has closed, or, when the run
// ended early, as they stand.
func (l *loader) result(elapsed time.Duration) *Result {
	l.mu.Lock()
	r := &Result{
		Requests:   l.cfg.Requests,
		Duplicates: l.duplicates,
		Late:       l.late,
		Strays:     l.strays,
		Unsettled:  l.unsettled,
		Elapsed:    elapsed,
	}
	for _, name := range l.names {
		r.Members = append(r.Members, &MemberStats{Name: name})
	}
	l.mu.Unlock()
	if l.want > 1 || l.cfg.PerRequest {
		r.PerRequest = make([][]string, len(l.slots))
	}
	for i := range l.slots {
		s := &l.slots[i]
		s.mu.Lock()
		if s.attempt == 1 {
			r.Retried++
		}
		switch s.state {
		case unsent:
			r.Unsent++
		case answered:
			r.Answered++
			if s.attempt == 1 {
				r.RetryAnswered++
			}
		case timedOut:
			r.TimedOut++
		default: // failed, or pending when the run ended early
			r.Failed++
		}
		if len(s.replies) > l.want {
			r.Repeated++
		}
		var who []string
		for _, rep := range s.replies {
			m := r.Members[rep.member]
			m.Latencies = append(m.Latencies, rep.latency)
			r.Replies++
			if rep.isError {
				m.Errors++
				r.Errors++
			}
			if r.PerRequest != nil {
				who = append(who, m.Name)
			}
		}
		s.mu.Unlock()
		if r.PerRequest != nil {
			r.PerRequest[i] = who
		}
	}
	for _, m := range r.Members {
		slices.Sort(m.Latencies)
	}
	return r
}

// expiring is a published attempt and the time it times out.
type expiring struct {
	n, attempt int
	deadline   time.Time
}

// expiryQueue is a FIFO of published attempts. Every attempt waits the
// same timeout, so the order they are published in is the order of their
// deadlines, and the watchdog only ever needs to look at the head. It
// keeps the attempts not yet popped, in an array of about twice the most
// there have been at once.
type expiryQueue struct {
	mu    sync.Mutex
	items []expiring
	head  int
	ready chan struct{} // has a value when items may be waiting
}

func (q *expiryQueue) init() { q.ready = make(chan struct{}, 1) }

// push appends e and wakes the watchdog if it waits.
func (q *expiryQueue) push(e expiring) {
	q.mu.Lock()
	q.items = append(q.items, e)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop takes the oldest attempt, waiting for one; false once ctx ends.
func (q *expiryQueue) pop(ctx context.Context) (expiring, bool) {
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			e := q.items[q.head]
			q.head++
			if q.head > len(q.items)/2 {
				// Half the array or more is popped: move what is left to
				// the front of the same array. A long run never empties
				// the queue (attempts are pending while the next one is
				// pushed), so without this the array would keep every
				// attempt ever sent; with it, it holds at most about
				// twice the most attempts in flight at once, and each
				// entry is moved at most once per pop on average.
				n := copy(q.items, q.items[q.head:])
				q.items, q.head = q.items[:n], 0
			}
			q.mu.Unlock()
			return e, true
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return expiring{}, false
		}
	}
}

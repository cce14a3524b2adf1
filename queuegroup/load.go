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

	"reqreply/internal/cli"
)

// This file is the requester side: it sends a number of requests, a fixed
// number in flight at once, collects every reply on one inbox of its own,
// and keeps enough of each to prove that every request was answered exactly
// once and to say by whom and how fast.

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
	// Timeout is how long one request waits for its replies (> 0); a
	// retry waits as long again.
	Timeout time.Duration
	// Replies each request waits for: 1 (the default when 0) for one queue
	// group; n to gather one reply from each of n groups on the subject.
	Replies int
	// Retry re-sends a request that timed out, once, on a fresh reply
	// subject. The first copy may have been handled even though its reply
	// never came, so a retried request can run twice: only safe when the
	// handler is idempotent.
	Retry bool

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
	// context ends after Timeout.
	Settle func(ctx context.Context) error
}

// Result is what a load run saw.
type Result struct {
	// Requests sent.
	Requests int
	// Answered requests got all their replies, first time or on the retry.
	Answered int
	// Retried requests timed out once and were sent again (with Retry).
	Retried int
	// RetryAnswered of the Retried requests were answered the second time.
	RetryAnswered int
	// TimedOut requests never got all their replies.
	TimedOut int
	// Duplicates are replies beyond the expected number for one request.
	Duplicates int
	// Late replies came after their request had timed out, and were not
	// counted as answers; with Retry such a request ran twice.
	Late int
	// Strays are messages on the requester's inbox that answer no request
	// it sent (published there by someone else); they are not counted
	// anywhere else.
	Strays int
	// Unsettled is set when members were still working through queued
	// requests when counting ended (Settle ran out of time): replies they
	// send later are not counted as late or duplicate.
	Unsettled bool
	// Elapsed is the time from the first request sent to the last answered
	// or timed out.
	Elapsed time.Duration
	// Members is what each replier did, in order of first reply.
	Members []*MemberStats
	// PerRequest[i] lists, for request number i+1, the members whose
	// replies counted, in order of arrival. Filled only when a request
	// waits for more than one reply (LoadConfig.Replies > 1).
	PerRequest [][]string
}

// MemberStats is one replier's share of a load run.
type MemberStats struct {
	// Name is the reply's payload: the member's name.
	Name string
	// Latencies of the replies it sent that counted, ascending: from the
	// request's publish to its reply's arrival.
	Latencies []time.Duration
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

// Exact reports whether every request was answered exactly once: no
// request timed out, and no duplicate or late reply came.
func (r *Result) Exact() bool {
	return r.Answered == r.Requests && r.TimedOut == 0 && r.Duplicates == 0 && r.Late == 0
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
	noResponders
)

// slot is one request's state, shared by the publisher, the inbox handler
// that receives its replies, and the watchdog that times it out.
type slot struct {
	mu      sync.Mutex
	attempt int       // 0, or 1 for the retry
	state   int       // unsent, pending, answered, timedOut, noResponders
	sent    time.Time // publish time of the current attempt
	replies []reply   // the replies that counted
	first   [1]reply  // room for the first, so most requests allocate nothing
}

// reply is one counted reply: who sent it and how long it took.
type reply struct {
	member  int32 // index into loader.names
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
	// is answered or finally times out. Cap: min(Concurrency, Requests).
	window chan struct{}
	// expiry lists every published attempt in order of its deadline, for
	// the watchdog.
	expiry expiryQueue
	// remaining counts the requests not yet answered or timed out for
	// good; allDone closes when it reaches 0.
	remaining atomic.Int64
	allDone   chan struct{}
	fail      context.CancelCauseFunc
	retryOnce sync.Once
	retryErr  error

	// Owned by the inbox handler, which nats.go runs on one goroutine; read
	// by Load only after the inbox subscription has closed.
	names      []string
	index      map[string]int32
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
// is the order of their deadlines. After the last request Load runs
// cfg.Settle, then drains the inbox, which returns once every reply that had
// reached the server is counted.
//
// Load keeps about 100 bytes per request, and a queue entry (32 bytes) for
// each request sent within the last cfg.Timeout.
//
// A timed-out request is counted, not an error; with cfg.Retry it is sent
// once more. Errors, each wrapped with the subject: nats.ErrInvalidArg or
// nats.ErrBadSubject for a bad cfg (nothing is sent); nats.ErrNoResponders
// at the first request that finds no subscriber on the subject at all (the
// server answers it at once with status 503; the run stops there); ctx's
// error when it ends first; the error of cfg.Before, cfg.BeforeRetry or
// cfg.Settle; nats.ErrTimeout if the inbox does not drain within
// cli.DrainTimeout (5 s); nats.go's publish or subscribe errors
// (nats.ErrConnectionClosed, ...).
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
		index:   map[string]int32{},
	}
	for range cap(l.window) {
		l.window <- struct{}{}
	}
	l.remaining.Store(int64(cfg.Requests))
	l.expiry.init()

	// One subscription takes every reply. Flush, so the server knows it
	// before the first request goes out.
	inbox, err := nc.Subscribe(l.prefix+".*.*", l.onReply)
	if err != nil {
		return nil, fmt.Errorf("load %q: inbox: %w", cfg.Subject, err)
	}
	if err := inbox.SetPendingLimits(-1, -1); err != nil {
		_ = inbox.Unsubscribe() // the limits error says what went wrong
		return nil, fmt.Errorf("load %q: inbox: %w", cfg.Subject, err)
	}
	if err := nc.FlushTimeout(setupTimeout(cfg.Timeout)); err != nil {
		_ = inbox.Unsubscribe() // the flush error says what went wrong
		return nil, fmt.Errorf("load %q: inbox: %w", cfg.Subject, err)
	}

	// The watchdog times requests out while the publisher sends them.
	var watching sync.WaitGroup
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
			return nil, fmt.Errorf("load %q: %w", cfg.Subject, ctx.Err())
		}
		return nil, failure
	}

	// Let the members' last replies reach the server, then drain the inbox:
	// its flush brings every reply the server has for us, and its close
	// comes after the handler has counted each of them.
	// A member with a backlog (a slow one) may take longer than a request's
	// timeout to work through it; the counts are still worth reporting, so
	// running out of time here is noted, not an error.
	if cfg.Settle != nil {
		sctx, cancel := context.WithTimeout(ctx, setupTimeout(cfg.Timeout)+cli.DrainTimeout)
		err := cfg.Settle(sctx)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			l.unsettled = true
		default:
			_ = inbox.Unsubscribe() // the settle error says what went wrong
			return nil, fmt.Errorf("load %q: settle: %w", cfg.Subject, err)
		}
	}
	closed := inbox.StatusChanged(nats.SubscriptionClosed)
	if err := inbox.Drain(); err != nil {
		return nil, fmt.Errorf("load %q: drain inbox: %w", cfg.Subject, err)
	}
	drainLimit := time.NewTimer(cli.DrainTimeout)
	defer drainLimit.Stop()
	select {
	case <-closed:
	case <-drainLimit.C:
		return nil, fmt.Errorf("load %q: drain inbox: not done within %v: %w", cfg.Subject, cli.DrainTimeout, nats.ErrTimeout)
	case <-ctx.Done():
		return nil, fmt.Errorf("load %q: drain inbox: %w", cfg.Subject, ctx.Err())
	}
	return l.result(elapsed), nil
}

// publishAll is the publisher: request after request, each when the window
// has room, running cfg.Before just before request cfg.At.
func (l *loader) publishAll(ctx context.Context) {
	payload := make([]byte, 0, 20)
	for n := 1; n <= l.cfg.Requests; n++ {
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
// to the watchdog.
func (l *loader) publish(n, attempt int, payload []byte) error {
	s := &l.slots[n-1]
	s.mu.Lock()
	s.attempt = attempt
	s.state = pending
	s.replies = s.first[:0]
	s.sent = time.Now()
	deadline := s.sent.Add(l.cfg.Timeout)
	s.mu.Unlock()
	reply := l.prefix + "." + strconv.Itoa(attempt) + "." + strconv.Itoa(n)
	if err := l.nc.PublishRequest(l.cfg.Subject, reply, payload); err != nil {
		return fmt.Errorf("load %q: request %d: %w", l.cfg.Subject, n, err)
	}
	l.expiry.push(expiring{n: n, attempt: attempt, deadline: deadline})
	return nil
}

// setupTimeout bounds the round trips around a run (the inbox's flush,
// settling the members, reading stats): the request timeout, but never less
// than nats.go's 2 s connect timeout, so a tiny -timeout does not fail them.
func setupTimeout(timeout time.Duration) time.Duration {
	return max(timeout, nats.DefaultTimeout)
}

// done ends a request for good: its token goes back to the window, and the
// last one closes allDone.
func (l *loader) done() {
	l.window <- struct{}{}
	if l.remaining.Add(-1) == 0 {
		close(l.allDone)
	}
}

// onReply is the inbox handler: it files each reply under its request.
func (l *loader) onReply(m *nats.Msg) {
	n, attempt, ok := l.parse(m.Subject)
	if !ok {
		// Not one of ours (someone published to the inbox by hand).
		l.strays++
		return
	}
	s := &l.slots[n-1]
	s.mu.Lock()
	switch {
	case s.state == unsent || attempt > s.attempt:
		// Not an answer to anything sent: someone published to the inbox
		// by hand. Counting it would hand a window token back twice.
		l.strays++
		s.mu.Unlock()
	case attempt != s.attempt || s.state == timedOut:
		// The answer to an attempt that had already timed out.
		l.late++
		s.mu.Unlock()
	case s.state != pending:
		// More replies than the request waits for.
		l.duplicates++
		s.mu.Unlock()
	case len(m.Data) == 0 && m.Header.Get("Status") == "503":
		// The server's no-responders status: nobody subscribes at all.
		s.state = noResponders
		s.mu.Unlock()
		l.fail(fmt.Errorf("load %q: request %d: %w", l.cfg.Subject, n, nats.ErrNoResponders))
	default:
		s.replies = append(s.replies, reply{member: l.intern(m.Data), latency: time.Since(s.sent)})
		complete := len(s.replies) == l.want
		if complete {
			s.state = answered
		}
		s.mu.Unlock()
		if complete {
			l.done()
		}
	}
}

// watch is the watchdog: it takes published attempts in deadline order,
// skips those already answered, waits out the deadline of one still
// pending, and times it out if it still is. With cfg.Retry an attempt 0
// that times out is sent again, once, and keeps its place in the window.
func (l *loader) watch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		e, ok := l.expiry.pop(ctx)
		if !ok {
			return
		}
		if !l.pendingAt(e) {
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
		expired := s.attempt == e.attempt && s.state == pending
		if expired {
			s.state = timedOut
		}
		s.mu.Unlock()
		if !expired {
			continue
		}
		if !l.cfg.Retry || e.attempt == 1 {
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

// pendingAt reports whether attempt e still waits for its replies.
func (l *loader) pendingAt(e expiring) bool {
	s := &l.slots[e.n-1]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempt == e.attempt && s.state == pending
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

// intern returns the index of the member named by a reply's payload.
func (l *loader) intern(name []byte) int32 {
	if i, ok := l.index[string(name)]; ok {
		return i
	}
	i := int32(len(l.names))
	l.names = append(l.names, string(name))
	l.index[string(name)] = i
	return i
}

// result adds up the slots once the inbox has closed.
func (l *loader) result(elapsed time.Duration) *Result {
	r := &Result{
		Requests:   l.cfg.Requests,
		Duplicates: l.duplicates,
		Late:       l.late,
		Strays:     l.strays,
		Unsettled:  l.unsettled,
		Elapsed:    elapsed,
	}
	if l.want > 1 {
		r.PerRequest = make([][]string, len(l.slots))
	}
	for _, name := range l.names {
		r.Members = append(r.Members, &MemberStats{Name: name})
	}
	for i := range l.slots {
		s := &l.slots[i]
		if s.attempt == 1 {
			r.Retried++
		}
		if s.state != answered {
			r.TimedOut++
			continue
		}
		r.Answered++
		if s.attempt == 1 {
			r.RetryAnswered++
		}
		var who []string
		for _, rep := range s.replies {
			m := r.Members[rep.member]
			m.Latencies = append(m.Latencies, rep.latency)
			if r.PerRequest != nil {
				who = append(who, m.Name)
			}
		}
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
// deadlines, and the watchdog only ever needs to look at the head.
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
			if q.head == len(q.items) {
				// Empty: start over at the front of the same array.
				q.items, q.head = q.items[:0], 0
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

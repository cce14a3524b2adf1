// The responder side: a member of the queue group that does each request's
// work one at a time, with the faults the demo injects, and with the two
// responder-side patterns of package hedge, deadline propagation
// (hedge.Expired) and admission control by interest (hedge.Admission),
// when asked.

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/denials"
	"reqreply/hedge"
	"reqreply/internal/cli"
	"reqreply/otelnats"
	"reqreply/probe"
)

// Subject is the subject the members serve. A request's payload is its
// number in decimal; the reply's is "<number> <member name>", so the caller
// can check that the reply answers its own request and say who did the work.
const Subject = "tail.work"

// Group is the members' queue group: the server hands each request to one
// member, picked at random among those subscribed at that moment, not by
// load.
const Group = "workers"

// Fault is how a member misbehaves; the zero value answers at once.
type Fault struct {
	// Slow is extra time spent on every request: the consistently slow
	// member (10 ms in the demo). 0: none.
	Slow time.Duration
	// Stall is how long a transient stall lasts (50 ms in the demo), and
	// StallRate the fraction of requests, in [0, 1], that stall before their
	// work (0.01 in the demo). With MemberOptions.Workers 1 a stall also
	// holds up every request queued behind it, as a garbage collection
	// pause would; with more (the demo's 16) it delays only its own
	// request, as a slow disk read would.
	Stall     time.Duration
	StallRate float64
	// Seed makes the stall draws repeatable: the same seed stalls the same
	// requests, in order of arrival.
	Seed uint64
}

// MemberOptions choose a member's fault and the responder-side patterns.
type MemberOptions struct {
	Fault
	// Propagate makes the member skip, unanswered, a request whose
	// hedge.DeadlineHeader has passed when its turn comes, and stop work on
	// one whose deadline passes midway (hedge.Expired, hedge.DeadlineOf).
	Propagate bool
	// Admit, when > 0, is admission control by interest (hedge.Admission):
	// the member leaves the queue group when it holds Admit requests in
	// progress and rejoins below Admit. 0: off.
	Admit int
	// Workers is how many requests the member works on at once (≥ 1; 0
	// means 1). With 1, as a nats.go subscription callback works, requests
	// queue behind each other: a slow member's queue grows, and a stall
	// holds up every request behind it. With more, a stall delays only the
	// request it hits.
	Workers int
	// Node is the index, in env.Nodes(), of the node startMember connects
	// to; the callers spread members round-robin (memberNode). 0: the
	// first.
	Node int
	// Gate, when not nil, makes the member wait for a value (or the close)
	// on it before each request's work: tests use it to hold requests in
	// progress for as long as they choose.
	Gate <-chan struct{}
}

// Member is one member of the queue group, on a connection of its own named
// "tail <name>". Its subscription callback only files each request in the
// member's queue; MemberOptions.Workers goroutines (1 by default) take them
// in order and do the work, so "in progress" (taken and not yet finished)
// is a number the member knows. Make one with StartMember; stop it with Stop.
type Member struct {
	// Name identifies the member in replies and connection names.
	Name string
	// Server names the server its connection landed on (cli.ServerName).
	Server string

	nc    *nats.Conn
	opts  MemberOptions
	adm   *hedge.Admission // its subscriptions, requests in progress and admission control
	rngMu sync.Mutex
	rng   *rand.Rand
	queue chan *nats.Msg
	done  chan struct{} // closed when every worker has returned

	// qmu guards the queue's close: take holds it shared while it queues,
	// so Stop closes the queue only once no callback can send on it, even
	// when the subscriptions never reported their drain done (connection
	// lost). qclosed is set with the close.
	qmu     sync.RWMutex
	qclosed bool

	// halted is closed by halt (Abandon, or a Stop out of time): work in
	// progress and queued is given up and counted as Backlog.
	halted   chan struct{}
	haltOnce sync.Once

	stopOnce sync.Once
	stopErr  error

	received atomic.Int64 // requests taken from the server
	executed atomic.Int64 // requests whose work was done (and reply sent)
	skipped  atomic.Int64 // expired requests skipped (Propagate)
	cut      atomic.Int64 // requests whose deadline passed midway (Propagate)
	failed   atomic.Int64 // replies that could not be published
	backlog  atomic.Int64 // requests given up, queued or in progress, after halt
}

// queueCap bounds the member's queue of taken requests: 16384. A full queue
// blocks the subscription callback, and then nats.go's pending buffer of
// the subscription holds the rest, up to its limits (nats.go's defaults,
// 500,000 messages or 64 MiB); beyond them nats.go drops requests as a slow
// consumer (nats.ErrSlowConsumer, written to stderr by the Env's error
// handler), and their callers time out.
const queueCap = 1 << 14

// StartMember starts a member named name on nc, which it takes over (Stop
// drains it; a failed start closes it, unless the server denied the
// subscription: that connection is left to its owner to drain quietly),
// subscribes it to Subject
// in Group, and flushes, so once it returns nil its own server counts it in
// the group for the next request (on a cluster the other nodes learn of it
// asynchronously: a requester elsewhere waits with awaitMembers, whose
// probes the member answers). The first subscription is checked
// (denials.SubscribeChecked): if the server's permissions deny it, the error
// wraps nats.ErrPermissionViolation and names Subject and Group. Otherwise
// the error wraps the nats.go error of the subscribe or flush
// (nats.ErrConnectionClosed, ...) or nats.ErrInvalidArg for options out of
// range. opts.Node is not used: it is startMember's.
func StartMember(nc *nats.Conn, name string, opts MemberOptions) (*Member, error) {
	if err := opts.check(name); err != nil {
		nc.Close()
		return nil, err
	}
	m := &Member{
		Name:   name,
		Server: cli.ServerName(nc),
		nc:     nc,
		opts:   opts,
		rng:    rand.New(rand.NewPCG(opts.Seed, 0x7a11)),
		queue:  make(chan *nats.Msg, queueCap),
		done:   make(chan struct{}),
		halted: make(chan struct{}),
	}
	// Every request is counted in progress by the admission (which leaves
	// the group at opts.Admit) and handed to take; a readiness probe
	// (awaitMembers) is answered in front of it, at once, with the
	// member's name, and is no work: it is not received, queued or
	// counted, and admission control does not see it.
	m.adm = hedge.NewAdmission(opts.Admit, func(h nats.MsgHandler) (*nats.Subscription, error) {
		return nc.QueueSubscribe(Subject, Group, probe.Handler(name, otelnats.Handler(h)))
	}, m.take)
	otelnats.Default().ObserveAdmission(m.adm) // leaves counted, when metrics are on
	// The first join is checked: one flush, and a permissions violation
	// on this exact subject and group comes back as the error. A rejoin by
	// admission control is the same subscription again, allowed once this
	// one was, so it goes unchecked and costs no round trip.
	err := m.adm.Join(func(subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error) {
		ctx, cancel := context.WithTimeout(context.Background(), cli.ConnectTimeout)
		defer cancel()
		return denials.SubscribeChecked(ctx, nc, Subject, Group, subscribe)
	})
	if err != nil {
		// A denied connection is left to the Env, whose Close drains it
		// quietly: closed here, its last error (the violation) would be
		// printed as a close event, a second line for the one denial.
		if !errors.Is(err, nats.ErrPermissionViolation) {
			nc.Close()
		}
		return nil, fmt.Errorf("member %s: join %q in group %q: %w", name, Subject, Group, err)
	}
	var wg sync.WaitGroup
	for range max(opts.Workers, 1) {
		wg.Go(m.work)
	}
	go func() {
		wg.Wait()
		close(m.done)
	}()
	return m, nil
}

// check refuses options out of range, with an error wrapping
// nats.ErrInvalidArg.
func (opts MemberOptions) check(name string) error {
	if opts.Slow < 0 || opts.Stall < 0 || !(opts.StallRate >= 0 && opts.StallRate <= 1) || opts.Admit < 0 || opts.Workers < 0 {
		return fmt.Errorf("member %s: options %+v out of range: %w", name, opts, nats.ErrInvalidArg)
	}
	return nil
}

// startMember connects a member's own connection to env, on node opts.Node
// as a responder (under -secure, the responder's user), and starts the
// member on it (StartMember). Options out of range are refused before it
// connects; a failed connect returns nats.go's error (nats.ErrNoServers,
// ...).
func startMember(env *cli.Env, name string, opts MemberOptions) (*Member, error) {
	if err := opts.check(name); err != nil {
		return nil, err
	}
	nc, err := env.ConnectNodeAs(cli.Responder, name, opts.Node)
	if err != nil {
		return nil, err
	}
	return StartMember(nc, name, opts)
}

// take is the handler behind the admission, which has counted the request
// in progress and decided whether to leave the group: it queues the
// request for the worker. After Stop has closed the queue (which it does
// before a callback can run again only when the connection was lost),
// the request is counted as Backlog, and no longer in progress: nobody
// will work on it.
func (m *Member) take(msg *nats.Msg) {
	m.received.Add(1)
	m.qmu.RLock()
	defer m.qmu.RUnlock()
	if m.qclosed {
		m.backlog.Add(1)
		m.adm.Done()
		return
	}
	m.queue <- msg
}

// closeQueue closes the queue once no callback is sending on it; the
// workers then finish what it holds and return. Idempotent.
func (m *Member) closeQueue() {
	m.qmu.Lock()
	defer m.qmu.Unlock()
	if !m.qclosed {
		m.qclosed = true
		close(m.queue)
	}
}

// halt gives up the work: what is queued and what is in progress ends
// at once, unanswered, and counts as Backlog. Idempotent.
func (m *Member) halt() { m.haltOnce.Do(func() { close(m.halted) }) }

// work is one worker: one request at a time, in order of arrival.
func (m *Member) work() {
	for msg := range m.queue {
		m.serve(msg)
		m.adm.Done()
	}
}

// serve does one request: skip it if its deadline has passed (Propagate),
// else stall now and then (Stall, StallRate), spend the time the work takes
// (Slow) and reply "<number> <name>".
func (m *Member) serve(msg *nats.Msg) {
	if m.opts.Gate != nil {
		select {
		case <-m.opts.Gate:
		case <-m.halted:
			m.backlog.Add(1)
			return
		}
	}
	// Under Propagate the work runs against the request's deadline, as a Go
	// handler runs against its context: skipped if it has passed already,
	// cut short if it passes midway. Either way the caller has stopped
	// waiting, and a reply would be dropped.
	var deadline <-chan time.Time
	if m.opts.Propagate {
		if hedge.Expired(msg, time.Now()) {
			m.skipped.Add(1)
			return
		}
		if d, ok, err := hedge.DeadlineOf(msg); ok && err == nil {
			t := time.NewTimer(time.Until(d))
			defer t.Stop()
			deadline = t.C
		}
	}
	select {
	case <-m.halted:
		// The measurement is over and every caller has returned, or the
		// member is out of time to stop: this is work the member would
		// still do, for nobody.
		m.backlog.Add(1)
		return
	default:
	}
	d := m.opts.Slow
	if m.opts.StallRate > 0 && m.draw() < m.opts.StallRate {
		d += m.opts.Stall
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-deadline:
			t.Stop()
			m.cut.Add(1)
			return
		case <-m.halted:
			t.Stop()
			m.backlog.Add(1)
			return
		}
	}
	m.executed.Add(1)
	if msg.Reply == "" {
		return
	}
	reply := make([]byte, 0, len(msg.Data)+1+len(m.Name))
	reply = append(append(append(reply, msg.Data...), ' '), m.Name...)
	if err := msg.Respond(reply); err != nil {
		m.failed.Add(1)
	}
}

// draw returns the member's next random number in [0, 1).
func (m *Member) draw() float64 {
	m.rngMu.Lock()
	defer m.rngMu.Unlock()
	return m.rng.Float64()
}

// MemberStats are a member's counters.
type MemberStats struct {
	// Name of the member.
	Name string
	// Received requests, Executed (work done, reply sent), Skipped because
	// their deadline had passed, Cut short when it passed midway, Failed
	// replies (publish error), and the Backlog given up unanswered after
	// Abandon (or a Stop out of time), queued or in progress.
	Received, Executed, Skipped, Cut, Failed, Backlog int64
	// Joins are the SUBs it sent (1 without admission control), Leaves the
	// UNSUBs admission control sent: the subscription churn.
	Joins, Leaves int64
}

// Stats returns the member's counters now; after Settle they are final for
// the requests sent before it.
func (m *Member) Stats() MemberStats {
	joins, leaves := m.adm.Churn()
	return MemberStats{
		Name: m.Name, Received: m.received.Load(), Executed: m.executed.Load(),
		Skipped: m.skipped.Load(), Cut: m.cut.Load(), Failed: m.failed.Load(), Backlog: m.backlog.Load(),
		Joins: joins, Leaves: leaves,
	}
}

// Settle returns once the member has finished every request the server sent
// it before the call and its replies have reached the server: a flush (the
// server answers the PING after the messages it queued for this connection
// before it), a nats.go Barrier (which runs once the callback has returned
// for each of them, so each is in progress or done), a wait until the
// worker has nothing in progress, and a second flush. Without a deadline on
// ctx it waits at most cli.DrainTimeout (5 s). The error is ctx's, or the
// flush's.
func (m *Member) Settle(ctx context.Context) error {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	if err := m.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("%s: settle: %w", m.Name, err)
	}
	barrier := make(chan struct{})
	if err := m.nc.Barrier(func() { close(barrier) }); err != nil {
		return fmt.Errorf("%s: settle: %w", m.Name, err)
	}
	select {
	case <-barrier:
	case <-ctx.Done():
		return fmt.Errorf("%s: settle: %w", m.Name, ctx.Err())
	}
	// Then wait until the worker has nothing in progress.
	if err := m.adm.WaitIdle(ctx); err != nil {
		return fmt.Errorf("%s: settle: %w", m.Name, err)
	}
	if err := m.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("%s: settle: %w", m.Name, err)
	}
	return nil
}

// Abandon is Settle for the end of a measurement, when every caller has
// returned: the requests still queued, and the work in progress, are given
// up unanswered and counted as Backlog (or as Skipped when Propagate finds
// them expired), so neither a slow member's long queue nor a request that
// takes longer than DrainTimeout (-slow 1h) keeps the demo waiting. Every
// reply it would send goes to a caller that has left. The member stays in
// the group until Stop, giving up what comes. The error is Settle's.
func (m *Member) Abandon(ctx context.Context) error {
	m.halt()
	return m.Settle(ctx)
}

// Stop shuts the member down gracefully, as a member process does on
// SIGTERM: it leaves the group for good (draining every subscription, so
// requests already routed to it are still taken), finishes the requests in
// progress, then drains its connection, which flushes the last replies. It
// returns once the connection is closed.
//
// When the connection is not connected (the server went away and nats.go
// is reconnecting, or it is closed) there is nothing to drain to: Stop
// gives up the work at once, closes the connection and returns an error
// wrapping nats.ErrConnectionReconnecting or nats.ErrConnectionClosed.
// When ctx ends first, it does the same and returns an error wrapping
// ctx.Err(). Either way every goroutine of the member has ended when it
// returns. The error of a drain is nats.go's. Only the first call stops
// the member; later ones wait for it and return its error.
func (m *Member) Stop(ctx context.Context) error {
	m.stopOnce.Do(func() { m.stopErr = m.stop(ctx) })
	return m.stopErr
}

// stop is Stop's one run.
func (m *Member) stop(ctx context.Context) error {
	err := m.leave(ctx, m.adm.Close())
	if err == nil {
		// No callback runs any more: the queue has all it will get, and
		// the workers finish it.
		m.closeQueue()
		select {
		case <-m.done:
		case <-ctx.Done():
			err = fmt.Errorf("%s: finish work: %w", m.Name, ctx.Err())
		}
	}
	if err != nil {
		// Out of time, or no server: give up the work, close the
		// connection (its callbacks stop), then the queue. Every wait of
		// a worker also waits on halted, so they end at once.
		m.halt()
		m.nc.Close()
		m.closeQueue()
		<-m.done
		return err
	}
	closed := m.nc.StatusChanged(nats.CLOSED)
	defer m.nc.RemoveStatusListener(closed)
	if err := m.nc.Drain(); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("%s: drain connection: %w", m.Name, err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		m.nc.Close()
		return fmt.Errorf("%s: drain connection: %w", m.Name, ctx.Err())
	}
}

// leave drains every subscription in subs and waits until each has
// delivered what the server routed to it before the UNSUB: then no callback
// runs any more. The error wraps nats.ErrConnectionReconnecting or
// nats.ErrConnectionClosed when there is no server to drain to, ctx.Err()
// when it ends first, or a drain's nats.go error.
func (m *Member) leave(ctx context.Context, subs []*nats.Subscription) error {
	switch {
	case m.nc.IsClosed():
		return fmt.Errorf("%s: leave the group: %w", m.Name, nats.ErrConnectionClosed)
	case !m.nc.IsConnected():
		return fmt.Errorf("%s: leave the group: %w", m.Name, nats.ErrConnectionReconnecting)
	}
	for _, sub := range subs {
		closed := sub.StatusChanged(nats.SubscriptionClosed)
		if !sub.IsDraining() {
			if err := sub.Drain(); err != nil && !errors.Is(err, nats.ErrBadSubscription) {
				return fmt.Errorf("%s: drain subscription: %w", m.Name, err)
			}
		}
		select {
		case <-closed:
		case <-ctx.Done():
			return fmt.Errorf("%s: drain subscription: %w", m.Name, ctx.Err())
		}
	}
	return nil
}

// StopAll stops members at once (Stop), each bounded by cli.DrainTimeout
// even when ctx has ended, as a program that is stopping does. The error
// joins theirs. nil members are skipped.
func StopAll(ctx context.Context, members []*Member) error {
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		if m == nil {
			continue
		}
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cli.DrainTimeout)
			defer cancel()
			errs[i] = m.Stop(sctx)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// withDeadline returns ctx, or when it has no deadline a ctx that ends after
// cli.DrainTimeout: nats.go's FlushWithContext needs one.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, cli.DrainTimeout)
}

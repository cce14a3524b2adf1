package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/denials"
	"reqreply/internal/cli"
	"reqreply/otelnats"
	"reqreply/probe"
	"reqreply/queue"
	"reqreply/respond"
)

// This file is the responder side: a member of a queue group, each on its
// own connection, that answers a request with its own name, so the requester
// can tell who did the work.

// Subject is the subject the workers serve; a request's payload is its
// sequence number, the reply's payload the name of the member that took it.
const Subject = "queuegroup.work"

// Group is the queue group of the workers. NATS delivers each message
// published on Subject to exactly one member of each queue group subscribed
// to it, picked at random per message (not by load, not in turn), and to
// every plain subscriber.
const Group = "workers"

// AuditGroup is the second queue group the mixed demo puts on Subject.
const AuditGroup = "auditors"

// Member is one subscriber on a subject (Subject, for the workers): a
// member of a queue group, or a plain subscriber when its group is "", built
// on reqreply/queue's Member (its subscription, Leave, Drain, Settle). It
// answers each request with its name, and handles one request at a time, as
// a nats.go subscription callback does: requests routed to it while it is
// busy wait in its client. Make one with Join.
//
// When its work (MemberOptions.Work) returns an error or panics, the member
// recovers and sends an error reply instead of letting the requester time
// out: the payload is still its name, and the headers are the ones
// nats.go/micro uses (respond.ErrorMsg), Nats-Service-Error (the error's
// text) and Nats-Service-Error-Code ("500", or a *respond.ServiceError's own;
// a panic's error wraps respond.ErrPanic). On a server without header support
// (server option NoHeaderSupport) an error reply cannot be sent: the member
// sends no reply, counts the failure in Errors and writes one line to
// MemberOptions.Log, and the requester times out. Plain replies carry no
// headers, so they work on any server.
type Member struct {
	// Name identifies the member in replies, counts and connection names.
	Name string
	// Group is its queue group, or "" for a plain subscriber.
	Group string
	// Server names the server the member connected to (its server name,
	// or its URL): where its subscription lives.
	Server string

	q     *queue.Member
	nc    *nats.Conn
	opts  MemberOptions
	reply []byte

	received atomic.Int64 // requests taken by the handler
	answered atomic.Int64 // replies sent, error replies included
	errors   atomic.Int64 // requests whose work failed or panicked
	died     chan struct{}
}

// MemberOptions change how a Member behaves.
type MemberOptions struct {
	// Delay is extra time the member spends on each request, as if its work
	// took that long (the slow member of -slow). 0: answer at once.
	Delay time.Duration
	// DieAt, when > 0, makes the member die abruptly as it takes its DieAt-th
	// request: it closes its connection without draining and without
	// answering, as a crashed process would. Requests it held then get no
	// reply.
	DieAt int64
	// Silent members take requests and never answer: a plain subscriber that
	// only listens (an audit log, a cache warmer).
	Silent bool
	// Work, if set, is the member's work on a request's payload, run after
	// Delay: an error it returns, or a panic in it, makes the reply an
	// error reply (see Member). nil: the work always succeeds.
	Work func(request []byte) error
	// ReplyTwice makes the member send every reply twice, as a buggy
	// handler might: the requester counts the second as a duplicate.
	ReplyTwice bool
	// Log receives one line for each failure the requester cannot be told
	// of: an error reply that the server cannot carry (no header support),
	// or a reply that could not be sent. nil: os.Stderr.
	Log io.Writer
}

// Join makes a new member named name on nc, a connection of its own (the
// member closes it when it dies, and drains it in Drain), and subscribes it
// to subject in queue group group (a plain subscription when group is "")
// with queue.Join. Its handler is plain; the hardening wraps it from
// outside: probe.Handler answers a readiness probe (probe.Await) with the
// member's name, without counting it as work, and the subscription is
// checked for a denial (denials.SubscribeChecked). Join flushes before
// returning, so once it returns nil the server has the subscription and
// counts the member in the group for the next request on subject (on a
// cluster, other nodes learn of it once the interest propagates: a
// requester elsewhere waits for it with probe.Await). The error names the
// member, subject and group, and wraps nats.go's error of the subscribe or
// flush: nats.ErrBadSubject, nats.ErrBadQueueName,
// nats.ErrConnectionClosed, ...; or nats.ErrPermissionViolation (and
// denials.ErrDenied) when the server's permissions deny the subscription.
// nc is left open after an error.
func Join(nc *nats.Conn, subject, group, name string, opts MemberOptions) (*Member, error) {
	m := &Member{Name: name, Group: group, Server: cli.ServerName(nc), nc: nc, opts: opts, reply: []byte(name), died: make(chan struct{})}
	q, err := queue.Join(nc, subject, group, probe.Handler(name, otelnats.Handler(m.handle)), queue.WithSubscribe(denials.SubscribeChecked))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	m.q = q
	return m, nil
}

// join connects a new member named name to env's first node and joins it
// (Join); joinOn connects it to node, an index in env.Nodes(). Under
// -secure the member connects as the responder (cli.Responder): it may take
// requests on the service subjects and publish nothing but its replies.
// After an error the connection, if made, is left for env.Close to drain:
// closing it here would report a violation again, as the close's reason.
func join(env *cli.Env, subject, group, name string, opts MemberOptions) (*Member, error) {
	return joinOn(env, 0, subject, group, name, opts)
}

// joinOn is join on node.
func joinOn(env *cli.Env, node int, subject, group, name string, opts MemberOptions) (*Member, error) {
	nc, err := env.ConnectNodeAs(cli.Responder, name, node)
	if err != nil {
		return nil, err
	}
	return Join(nc, subject, group, name, opts)
}

// handle is the member's subscription callback: one request at a time.
// Readiness probes never reach it: probe.Handler answers them.
func (m *Member) handle(msg *nats.Msg) {
	n := m.received.Add(1)
	if m.opts.DieAt > 0 && n == m.opts.DieAt {
		// Crash: close without draining. The request in hand and any still
		// queued in this client are never answered.
		m.nc.Close()
		close(m.died)
		return
	}
	if m.opts.Delay > 0 {
		work(m.opts.Delay)
	}
	// The work, with a panic in it recovered into an error: the member
	// survives and the requester hears of it.
	err := m.run(msg.Data)
	if m.opts.Silent || msg.Reply == "" {
		return
	}
	reply := &nats.Msg{Data: m.reply}
	if err != nil {
		m.errors.Add(1)
		if !m.nc.HeadersSupported() {
			m.logf("%s: request on %q failed (%v); no error reply sent: the server does not support headers, which error replies need", m.Name, msg.Subject, err)
			return
		}
		reply = respond.ErrorMsg(err)
		reply.Data = m.reply
	}
	for range m.sends() {
		// Count before replying, so that a requester holding the reply
		// never sees a count that lags it.
		m.answered.Add(1)
		if err := msg.RespondMsg(reply); err != nil {
			// The connection closed under us (a kill or the end of the
			// program): the requester times out.
			m.answered.Add(-1)
			if !errors.Is(err, nats.ErrConnectionClosed) {
				m.logf("%s: reply on %q: %v", m.Name, msg.Reply, err)
			}
		}
	}
}

// run does the member's work on a request, turning a panic into an error.
func (m *Member) run(request []byte) (err error) {
	if m.opts.Work == nil {
		return nil
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: %v", respond.ErrPanic, v)
		}
	}()
	return m.opts.Work(request)
}

// sends is how many times the member sends each reply: 1, or 2 with
// MemberOptions.ReplyTwice.
func (m *Member) sends() int {
	if m.opts.ReplyTwice {
		return 2
	}
	return 1
}

// logf writes one line to the member's log.
func (m *Member) logf(format string, args ...any) {
	w := m.opts.Log
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, format+"\n", args...)
}

// work stands for the time a request's real work would take: d.
func work(d time.Duration) {
	t := time.NewTimer(d)
	<-t.C
}

// Received returns how many requests the member's handler has taken.
func (m *Member) Received() int64 { return m.received.Load() }

// Answered returns how many replies the member has sent, error replies
// and second replies (MemberOptions.ReplyTwice) included.
func (m *Member) Answered() int64 { return m.answered.Load() }

// Errors returns how many requests the member's work failed or panicked on.
func (m *Member) Errors() int64 { return m.errors.Load() }

// Died is closed once a member with MemberOptions.DieAt has closed its
// connection.
func (m *Member) Died() <-chan struct{} { return m.died }

// Conn returns the member's connection.
func (m *Member) Conn() *nats.Conn { return m.nc }

// Settle returns once the member has handled every message the server sent
// it before the call and its replies have reached the server (queue.Settle:
// a Flush, a nats.go Barrier and a second Flush). Counts read afterwards are
// final for those messages. A closed member is settled already; a
// reconnecting one cannot settle (the error wraps
// nats.ErrConnectionReconnecting, which Load takes as Result.Unsettled).
// Without a deadline on ctx, it waits at most the connection's DrainTimeout
// (cli.DrainTimeout, 5 s, on env's connections). The error names the member
// and is ctx's when it ends first, or the flush's.
func (m *Member) Settle(ctx context.Context) error {
	return settle(ctx, m.Name, m.nc)
}

// settle is Member.Settle for any connection nc of the member named name.
func settle(ctx context.Context, name string, nc *nats.Conn) error {
	if err := queue.Settle(ctx, nc); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// settlePlain settles plain subscribers (Group "") from nc, their
// requester: it returns once each has counted every message nc published
// on its subject before the call, copies still crossing a route included.
// A member's own Settle cannot promise that: its flush reaches only its
// own server, and on a cluster a copy may still be on the route from nc's
// server (a burst of 20,000 left a third of them there). So the copies are
// acknowledged the way they came: a readiness probe from nc
// (probe.Await) follows nc's earlier messages on the same path (one
// connection, and a server forwards an account's messages over a route in
// order), and a member's handler takes its messages one at a time, in
// order, so its answer to the probe comes after it has counted every
// earlier copy. The members of one subject are probed together. A closed
// member or one that has left is settled already. Errors: one wrapping
// nats.ErrConnectionReconnecting when nc or a member is disconnected;
// context.DeadlineExceeded (and nats.ErrTimeout) when a member has not
// answered by ctx's deadline (or within cli.DrainTimeout without one),
// which Load takes as Result.Unsettled; ctx's error; the probe's. On a
// server without header support, which probes need, each member only
// settles alone (Member.Settle).
func settlePlain(ctx context.Context, nc *nats.Conn, members []*Member) error {
	bySubject := map[string][]string{}
	var subjects []string
	for _, m := range members {
		sub := m.q.Subscription()
		if m.nc.IsClosed() || !sub.IsValid() {
			continue
		}
		if m.nc.IsReconnecting() {
			return fmt.Errorf("%s: settle: %w", m.Name, nats.ErrConnectionReconnecting)
		}
		if _, ok := bySubject[sub.Subject]; !ok {
			subjects = append(subjects, sub.Subject)
		}
		bySubject[sub.Subject] = append(bySubject[sub.Subject], m.Name)
	}
	if len(subjects) == 0 {
		return nil
	}
	if !nc.IsConnected() {
		return fmt.Errorf("settle from %s: %w", cli.ServerName(nc), nats.ErrConnectionReconnecting)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(cli.DrainTimeout)
	}
	for _, subject := range subjects {
		who := bySubject[subject]
		p, err := probe.Await(ctx, nc, subject, probe.AllOf(who...), time.Until(deadline))
		switch {
		case errors.Is(err, nats.ErrTimeout):
			return fmt.Errorf("settle %v from the requester: %w (%w)", who, context.DeadlineExceeded, err)
		case err != nil:
			return fmt.Errorf("settle %v from the requester: %w", who, err)
		case p.Skipped:
			for _, m := range members {
				if err := m.Settle(ctx); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return nil
}

// Leave takes the member out of its group gracefully (queue.Member.Leave):
// its subscription drains, so the server stops routing to it at once, and the
// requests it had already taken are answered before Leave returns. The
// connection stays open. The error names the member and is ctx's if it ends
// first, or nats.go's error of the drain (nats.ErrConnectionClosed, ...); one
// wrapping nats.ErrConnectionClosed, within a round trip, when the connection
// closes during the drain (the requests still held are then never answered).
func (m *Member) Leave(ctx context.Context) error {
	if err := m.q.Leave(ctx); err != nil {
		return fmt.Errorf("%s: %w", m.Name, err)
	}
	return nil
}

// Drain shuts the member down gracefully by draining its connection, as a
// member process does on SIGTERM (queue.Member.Drain): every subscription is
// drained as in Leave, the replies are flushed, then the connection closes.
// It returns once the connection is closed. The error names the member and
// is ctx's if it ends first, or nats.go's error of the drain
// (nats.ErrConnectionClosed if it was closed already).
func (m *Member) Drain(ctx context.Context) error {
	if err := m.q.Drain(ctx); err != nil {
		return fmt.Errorf("%s: %w", m.Name, err)
	}
	return nil
}

// The demo responders: each answers after its own seeded delay and names
// itself in a header; one may answer with the empty sentinel.

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"reqreply/denials"
	"reqreply/gather"
	"reqreply/otelnats"
	"reqreply/probe"
)

// DemoSubject is the subject the demo responders listen on.
const DemoSubject = "gather.demo"

// Responder is one demo responder: it answers every request on its subject
// after Delay, from Name, with the payload "reply from <Name>" (or an empty
// payload, the sentinel, when Sentinel is set). Its reply carries
// ResponderHeader: Name, and echoes the request's headers but those NATS
// gives a meaning to ("Status", "Description", "Nats-…"), which would make
// the reply look like a status or a service error.
//
// Work, when set, computes the payload instead; it stands for a real
// handler. A Work that returns an error or panics does not take the
// responder down: the panic is recovered and the reply becomes an error
// reply in the headers nats.go/micro uses (Nats-Service-Error with the
// error's text, Nats-Service-Error-Code "500"), which a gather reads as
// Reply.ServiceError, so the requester learns of the failure at once
// instead of missing a reply until its deadline.
type Responder struct {
	Name     string
	Delay    time.Duration
	Sentinel bool
	Work     func(req *nats.Msg) ([]byte, error)
	// NoProbes: let readiness probes go unanswered, because another
	// responder on the same server answers them (see serveDemo).
	NoProbes bool
}

// ErrPanic is wrapped by the error a Responder reports when its Work panics.
var ErrPanic = errors.New("responder panicked")

// SentinelAfter is how long after the longest responder delay the sentinel
// responder answers: 10 ms, so that its empty reply normally comes last.
const SentinelAfter = 10 * time.Millisecond

// MaxDelay is the longest responder delay the demo takes: 1 h.
const MaxDelay = time.Hour

// DemoResponders returns n responders named responder-1 … responder-n,
// each with a delay drawn uniformly from [0, maxDelay] (at most MaxDelay) by
// a PCG generator seeded with seed, so a seed replays the same arrival
// order. With sentinel, one more responder, "sentinel", answers with an
// empty payload SentinelAfter after maxDelay: the "that's all" message.
func DemoResponders(n int, maxDelay time.Duration, seed uint64, sentinel bool) []Responder {
	maxDelay = min(maxDelay, MaxDelay)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	rs := make([]Responder, n, n+1)
	for i := range rs {
		rs[i] = Responder{Name: fmt.Sprintf("responder-%d", i+1)}
		if maxDelay > 0 {
			rs[i].Delay = time.Duration(rng.Int64N(int64(maxDelay) + 1))
		}
	}
	if sentinel {
		rs = append(rs, Responder{Name: "sentinel", Delay: maxDelay + SentinelAfter, Sentinel: true})
	}
	return rs
}

// Serve subscribes each responder to subject on nc (each subscription has
// its own goroutine in nats.go, so one responder's delay does not hold up
// another's) and flushes, so they are all known to the server when it
// returns (on a cluster, their interest still has to reach the other
// nodes: a requester elsewhere waits for it with probe.Await,
// whose readiness probes the first responder on nc answers at once with
// its name (probe.Handler) and the others drop (probe.Skip); none counts). The first subscription is made with denials.SubscribeChecked:
// a subject the connection's user may not subscribe to fails here with an
// error wrapping nats.ErrPermissionViolation that names it, instead of
// serving nothing; the others are on the same subject, which the server's
// permissions then allow too. When ctx ends, the run is over and nobody
// waits for these replies: a responder still in its delay drops the
// request unanswered and returns at once, so a drain of nc (which waits
// for handlers to return) ends promptly. On a server without header
// support (nc.HeadersSupported false: nats-server before 2.2, or
// no_header_support) the replies carry no headers: the payload still names
// the responder. The error wraps the failed subscribe or flush.
//
// Each responder sends one reply per request, so one connection carrying k
// responders sends k replies to one reply subject: under allow_responses
// (see cli.Lockdown) its max must be at least k.
func Serve(ctx context.Context, nc *nats.Conn, subject string, responders []Responder) ([]*nats.Subscription, error) {
	headers := nc.HeadersSupported()
	subs := make([]*nats.Subscription, 0, len(responders))
	for i, r := range responders {
		// Only the first responder on nc answers readiness probes: the
		// others on nc are on the same server, so its answer says their
		// interest is visible too, and a probe answered by every
		// responder would cost n answers a probe (see awaitResponders).
		// Each request's handling is a span continuing the gather's trace
		// (otelnats; nothing when telemetry is off); probes are not.
		handle := otelnats.Handler(func(m *nats.Msg) { r.handle(ctx, m, headers) })
		handler := probe.Skip(handle)
		if i == 0 && !r.NoProbes {
			handler = probe.Handler(r.Name, handle)
		}
		var (
			sub *nats.Subscription
			err error
		)
		if i == 0 {
			sub, err = denials.SubscribeChecked(ctx, nc, subject, "", func() (*nats.Subscription, error) {
				return nc.Subscribe(subject, handler)
			})
		} else {
			sub, err = nc.Subscribe(subject, handler)
		}
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
			return nil, fmt.Errorf("serve %s on %q: %w", r.Name, subject, err)
		}
		subs = append(subs, sub)
	}
	if len(subs) > 1 {
		if err := nc.FlushTimeout(nc.Opts.Timeout); err != nil {
			return nil, fmt.Errorf("serve %q: flush: %w", subject, err)
		}
	}
	return subs, nil
}

// handle answers one request (readiness probes are answered or dropped
// before it, by the probe middleware Serve wraps it in: they are not
// requests of the gather).
func (r Responder) handle(ctx context.Context, m *nats.Msg, headers bool) {
	if m.Reply == "" {
		return // a plain publish, not a request
	}
	// Waiting is the responder's "work"; it delays only this subscription's
	// goroutine, and stops when the run is over.
	if r.Delay > 0 {
		t := time.NewTimer(r.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	data, err := r.payload(m)
	if !headers {
		// Without headers there is no error reply to send: the gather sees
		// one responder fewer, as the run's note on header support says.
		if err == nil {
			_ = m.Respond(data)
		}
		return
	}
	reply := nats.NewMsg(m.Reply)
	for k, v := range m.Header {
		if k != "Status" && k != "Description" && !strings.HasPrefix(k, "Nats-") {
			reply.Header[k] = v
		}
	}
	reply.Header.Set(gather.ResponderHeader, r.Name)
	if err != nil {
		reply.Header.Set(micro.ErrorHeader, err.Error())
		reply.Header.Set(micro.ErrorCodeHeader, "500")
		data = nil
	}
	reply.Data = data
	// A failed reply (the connection closing) leaves the gather to its
	// deadline or stall; there is no one else to tell.
	_ = m.RespondMsg(reply)
}

// payload is the reply's payload: Work's, with a panic in it recovered as
// an error wrapping ErrPanic, or the demo's own.
func (r Responder) payload(m *nats.Msg) (data []byte, err error) {
	if r.Work == nil {
		if r.Sentinel {
			return nil, nil
		}
		return []byte("reply from " + r.Name), nil
	}
	defer func() {
		if v := recover(); v != nil {
			data, err = nil, fmt.Errorf("%s: %w: %v", r.Name, ErrPanic, v)
		}
	}()
	return r.Work(m)
}

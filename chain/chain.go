// The chain's services, its caller and the ledger of the work done after
// the caller gave up.

package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"reqreply/hedge"
	"reqreply/internal/cli"
)

// Hops are the services' subjects, A's first; the caller asks Hops[0].
var Hops = []string{"chain.a", "chain.b", "chain.c"}

// IDHeader carries the caller's request number down the chain, so the
// ledger can tell when that request's caller gave up.
const IDHeader = "Chain-Request"

// step is the unit of C's work: it checks its context between steps.
const step = time.Millisecond

// Config is what the chain program was asked to do.
type Config struct {
	// Requests the caller sends (-requests), Concurrency at a time
	// (-concurrency; 1: one after another).
	Requests, Concurrency int
	// Timeout: how long the caller waits for each reply (-timeout).
	Timeout time.Duration
	// Work: how long C works on each request (-work).
	Work time.Duration
	// HopTimeout: without the middleware, each service's own timeout for
	// its call to the next, and C's for its work (-hop-timeout).
	HopTimeout time.Duration
}

// Check validates cfg before anything connects; the error wraps
// cli.ErrUsage.
func (cfg *Config) Check() error {
	switch {
	case cfg.Requests < 1, cfg.Concurrency < 1:
		return cli.Usagef("-requests %d and -concurrency %d must be ≥ 1", cfg.Requests, cfg.Concurrency)
	case cfg.Timeout <= 0, cfg.Work <= 0, cfg.HopTimeout <= 0:
		return cli.Usagef("-timeout, -work and -hop-timeout must be > 0")
	}
	return nil
}

// Result is one run's ledger, by service (A, B, C).
type Result struct {
	// Wasted is the handler time spent after the caller gave up on the
	// request (its request returned, answered or not).
	Wasted [3]time.Duration
	// Ran counts the handler runs; Stopped those of them that ended
	// because their context did, before their work was done.
	Ran, Stopped [3]int
	// Refused counts the requests the middleware answered as expired
	// without running the handler.
	Refused [3]int
}

// connect opens a connection for each service and the caller's last.
func connect(env *cli.Env) ([]*nats.Conn, error) {
	var conns []*nats.Conn
	for _, role := range []string{"service A", "service B", "service C", "caller"} {
		nc, err := env.Connect(role)
		if err != nil {
			return nil, err
		}
		conns = append(conns, nc)
	}
	return conns, nil
}

// ledger records what the services did, and when each request's caller
// gave up.
type ledger struct {
	mu      sync.Mutex
	gaveUp  map[string]time.Time
	runs    []run
	sent    [3]int // requests each service sent on to the next
	done    [3]int // requests each service finished (ran or refused)
	refused [3]int
	changed chan struct{}
}

// run is one handler run of service hop for request id; stopped if its
// context ended before its work was done.
type run struct {
	hop        int
	id         string
	start, end time.Time
	stopped    bool
}

// finish records that service hop is done with a request: its handler's
// run, or nil if the middleware refused it. It wakes the waiter.
func (l *ledger) finish(hop int, r *run) {
	l.mu.Lock()
	l.done[hop]++
	if r != nil {
		l.runs = append(l.runs, *r)
	} else {
		l.refused[hop]++
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// idle reports whether every request sent has been finished by its service.
func (l *ledger) idle(requests int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done[0] == requests && l.done[1] == l.sent[0] && l.done[2] == l.sent[1]
}

// result sums the handler time after each request's caller gave up.
func (l *ledger) result() Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	res := Result{Refused: l.refused}
	for _, r := range l.runs {
		res.Ran[r.hop]++
		if r.stopped {
			res.Stopped[r.hop]++
		}
		gave, ok := l.gaveUp[r.id]
		if !ok || !r.end.After(gave) {
			continue
		}
		if r.start.After(gave) {
			gave = r.start
		}
		res.Wasted[r.hop] += r.end.Sub(gave)
	}
	return res
}

// service is one hop of the chain.
type service struct {
	hop int
	nc  *nats.Conn
	cfg Config
	l   *ledger
}

// handler is the service's micro handler: handle, behind the deadline
// middleware or with the service's own timeout, recorded in the ledger.
// micro calls it for one request at a time.
func (s *service) handler(parent context.Context, with bool) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		var r *run
		h := func(ctx context.Context, req micro.Request) { r = s.handle(ctx, req) }
		if with {
			hedge.DeadlineMicroHandler(parent, h).Handle(req)
		} else {
			ctx, cancel := context.WithTimeout(parent, s.cfg.HopTimeout)
			h(ctx, req)
			cancel()
		}
		s.l.finish(s.hop, r)
	})
}

// handle is the service's work for one request, until ctx ends: A and B
// call the next service with ctx (passing on what is left of its deadline,
// SetContextDeadline), C works in steps. It returns the run.
func (s *service) handle(ctx context.Context, req micro.Request) *run {
	r := &run{hop: s.hop, id: req.Headers().Get(IDHeader), start: time.Now()}
	defer func() { r.end = time.Now() }()
	if s.hop == len(Hops)-1 {
		for done := time.Duration(0); done < s.cfg.Work; done += step {
			select {
			case <-ctx.Done():
				r.stopped = true
				_ = req.Error(hedge.ExpiredCode, "gave up: "+ctx.Err().Error(), nil)
				return r
			case <-time.After(step):
			}
		}
		_ = req.Respond([]byte("done"))
		return r
	}
	msg := nats.NewMsg(Hops[s.hop+1])
	msg.Header.Set(IDHeader, r.id)
	hedge.SetContextDeadline(ctx, msg)
	s.l.mu.Lock()
	s.l.sent[s.hop]++
	s.l.mu.Unlock()
	reply, err := s.nc.RequestMsgWithContext(ctx, msg)
	switch {
	case err != nil:
		r.stopped = true
		_ = req.Error(hedge.ExpiredCode, "gave up: "+err.Error(), nil)
	case reply.Header.Get(micro.ErrorCodeHeader) != "": // the next one stopped (or refused) first: pass it on
		r.stopped = true
		_ = req.Error(reply.Header.Get(micro.ErrorCodeHeader), reply.Header.Get(micro.ErrorHeader), nil)
	default:
		_ = req.Respond(reply.Data)
	}
	return r
}

// ask sends request id to A on caller, gives up after timeout, and records
// when. The reply (an answer or an error reply) or the timeout is what a
// caller gets; only another error, or ctx's end, is returned.
func ask(ctx context.Context, caller *nats.Conn, l *ledger, timeout time.Duration, id string) error {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg := nats.NewMsg(Hops[0])
	msg.Header.Set(IDHeader, id)
	hedge.SetContextDeadline(rctx, msg)
	_, err := caller.RequestMsgWithContext(rctx, msg)
	l.mu.Lock()
	l.gaveUp[id] = time.Now()
	l.mu.Unlock()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("request %s: %w", Hops[0], err)
	}
	return nil
}

// runChain starts the three services (with or without the deadline
// middleware) on conns, sends cfg.Requests requests from the caller (the
// last of conns), cfg.Concurrency at a time, each given up after cfg.Timeout, waits
// until every service is done, stops the services and returns the ledger.
func runChain(ctx context.Context, conns []*nats.Conn, cfg Config, with bool) (Result, error) {
	l := &ledger{gaveUp: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	for i, subject := range Hops {
		s := &service{hop: i, nc: conns[i], cfg: cfg, l: l}
		svc, err := micro.AddService(conns[i], micro.Config{Name: fmt.Sprintf("chain-%c", 'a'+i), Version: "1.0.0",
			Endpoint: &micro.EndpointConfig{Subject: subject, Handler: s.handler(ctx, with)}})
		if err != nil {
			return Result{}, fmt.Errorf("service %s: %w", subject, err)
		}
		defer func() { _ = svc.Stop() }()
		if err := conns[i].Flush(); err != nil {
			return Result{}, err
		}
	}
	// The caller: cfg.Concurrency requests in flight, each given up after
	// cfg.Timeout.
	caller := conns[len(conns)-1]
	next := make(chan int)
	errs := make(chan error, cfg.Concurrency)
	for range cfg.Concurrency {
		go func() {
			var err error
			for n := range next {
				if err == nil {
					err = ask(ctx, caller, l, cfg.Timeout, fmt.Sprint(n))
				}
			}
			errs <- err
		}()
	}
	for n := range cfg.Requests {
		next <- n
	}
	close(next)
	var err error
	for range cfg.Concurrency {
		err = cmp.Or(err, <-errs)
	}
	if err != nil {
		return Result{}, err
	}
	// Every service finishes what it took; bounded by each service's own
	// timeout per request.
	limit := time.After(time.Duration(cfg.Requests)*3*(cfg.HopTimeout+cfg.Work) + 10*time.Second)
	for !l.idle(cfg.Requests) {
		select {
		case <-l.changed:
		case <-limit:
			return Result{}, errors.New("the services never finished their requests")
		case <-ctx.Done():
			return Result{}, context.Cause(ctx)
		}
	}
	return l.result(), nil
}

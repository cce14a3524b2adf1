// The load: a number of requests sent through a Client with a fixed number
// in flight, each reply checked against its request.

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/hedge"
)

// LoadConfig is one run of requests.
type LoadConfig struct {
	// Requests to send (≥ 1), numbered from 1; a request's payload is its
	// number in decimal. Ignored when Until is set.
	Requests int
	// Concurrency is how many callers send at once (≥ 1), each one request
	// at a time: the requests in flight.
	Concurrency int
	// Timeout is each request's overall deadline, from its first copy (> 0).
	Timeout time.Duration
	// Until, when not nil, makes the callers go on until it is closed,
	// instead of stopping after Requests.
	Until <-chan struct{}
	// Pace is how long each caller waits between its requests (0: none):
	// a steady client rather than a tight loop.
	Pace time.Duration
	// Progress, when not nil, is called after each request with the number
	// finished so far, from the callers' goroutines.
	Progress func(finished int)
}

// LoadResult is what the callers saw.
type LoadResult struct {
	// Requests sent.
	Requests int
	// Latencies of every request, ascending, TimedOut for those that never
	// got a reply (timeout or no responders).
	Latencies []time.Duration
	// ByMember holds, per member name, the latencies of the replies it
	// sent that callers took, ascending.
	ByMember map[string][]time.Duration
	// Answered requests got a reply that answers them.
	Answered int
	// TimedOut requests failed with nats.ErrTimeout, NoResponders with
	// nats.ErrNoResponders, Failed with any other error (FirstError).
	TimedOut, NoResponders, Failed int
	// Wrong replies were handed to a caller but answer another request, or
	// are malformed: always 0 unless something is broken.
	Wrong int
	// FirstError is the first error of the Failed requests.
	FirstError error
	// Elapsed from the first request to the last outcome.
	Elapsed time.Duration
}

// Load sends requests on subject through c as cfg says and returns what
// came back. It checks each reply: its payload must be "<number> <member>"
// for the request's own number, else it counts as Wrong. Errors of single
// requests are counted, not returned; Load returns early only when ctx ends,
// with what it has.
func Load(ctx context.Context, c *hedge.Client, subject string, cfg LoadConfig) *LoadResult {
	type outcome struct {
		latency time.Duration
		member  string
		err     error
		wrong   bool
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		counter  atomic.Int64
		finished atomic.Int64
		wg       sync.WaitGroup
	)
	// A denied request ends the load: the server denies by subject, so
	// every later request would be denied too (Client.Request).
	var denied atomic.Bool
	more := func() (int, bool) {
		if denied.Load() {
			return 0, false
		}
		n := int(counter.Add(1))
		if cfg.Until != nil {
			select {
			case <-cfg.Until:
				return 0, false
			default:
				return n, true
			}
		}
		return n, n <= cfg.Requests
	}
	start := time.Now()
	for range cfg.Concurrency {
		wg.Go(func() {
			for {
				n, ok := more()
				if !ok || ctx.Err() != nil {
					return
				}
				payload := []byte(strconv.Itoa(n))
				rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
				t0 := time.Now()
				msg, err := c.Request(rctx, subject, payload)
				o := outcome{latency: time.Since(t0), err: err}
				cancel()
				if err != nil && errors.Is(err, nats.ErrPermissionViolation) {
					denied.Store(true)
				}
				if err == nil {
					num, member, ok := bytes.Cut(msg.Data, []byte(" "))
					o.member = string(member)
					o.wrong = !ok || !bytes.Equal(num, payload)
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				if cfg.Progress != nil {
					cfg.Progress(int(finished.Add(1)))
				}
				if cfg.Pace > 0 {
					if hedge.Sleep(ctx, cfg.Pace) != nil {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	r := &LoadResult{Requests: len(outcomes), Elapsed: time.Since(start), ByMember: map[string][]time.Duration{}}
	for _, o := range outcomes {
		switch {
		case o.err == nil && o.wrong:
			r.Wrong++
			r.Latencies = append(r.Latencies, o.latency)
		case o.err == nil:
			r.Answered++
			r.Latencies = append(r.Latencies, o.latency)
			r.ByMember[o.member] = append(r.ByMember[o.member], o.latency)
		case errors.Is(o.err, nats.ErrNoResponders) && !errors.Is(o.err, nats.ErrTimeout):
			r.NoResponders++
			r.Latencies = append(r.Latencies, TimedOut)
		case errors.Is(o.err, nats.ErrTimeout):
			r.TimedOut++
			r.Latencies = append(r.Latencies, TimedOut)
		default:
			r.Failed++
			if r.FirstError == nil {
				r.FirstError = o.err
			}
			r.Latencies = append(r.Latencies, TimedOut)
		}
	}
	slices.Sort(r.Latencies)
	for _, l := range r.ByMember {
		slices.Sort(l)
	}
	return r
}

// ErrConnectionLost is wrapped by LoadWatched's error when the requester's
// connection stopped being connected during the load, with nats.go's
// status error (nats.ErrConnectionReconnecting or nats.ErrConnectionClosed).
var ErrConnectionLost = errors.New("requester's connection lost during the load")

// LoadWatched is Load, ended early when c's connection stops being
// connected (nats.go reconnecting after a lost server, or closed): every
// request after that would only wait out its timeout in nats.go's reconnect
// buffer, and the figures of the row would be the outage's, not the
// pattern's. The error then wraps ErrConnectionLost; else it is nil, and
// ctx's end is left to the caller, as with Load.
func LoadWatched(ctx context.Context, c *hedge.Client, subject string, cfg LoadConfig) (*LoadResult, error) {
	lost := c.Conn().StatusChanged(nats.RECONNECTING, nats.CLOSED)
	defer c.Conn().RemoveStatusListener(lost)
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		// A status change before the listener was registered shows in
		// IsConnected.
		if !c.Conn().IsConnected() {
			cancel(ErrConnectionLost)
			return
		}
		select {
		case <-lost:
			cancel(ErrConnectionLost)
		case <-lctx.Done():
		}
	}()
	res := Load(lctx, c, subject, cfg)
	cancel(nil)
	<-watched
	if errors.Is(context.Cause(lctx), ErrConnectionLost) && ctx.Err() == nil {
		status := nats.ErrConnectionReconnecting
		if c.Conn().IsClosed() {
			status = nats.ErrConnectionClosed
		}
		return res, fmt.Errorf("after %d requests: %w: %w", res.Requests, ErrConnectionLost, status)
	}
	return res, nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The soak (Load): requests through a queue group and
// scatter-gathers at the same time, on one server, with members drained
// and added while the requests flow. It must end with zero lost, zero
// duplicated and zero wrong replies, each reply matched to its request.
// Short in plain `go test`; -soak (or REQREPLY_SOAK=1) runs the full
// 200,000 requests and 10,000 gathers, with progress on stderr when stderr
// is a terminal.
var soak = flag.Bool("soak", false, "run the full soak: 200,000 requests and 10,000 gathers (or REQREPLY_SOAK=1)")

// soakSizes returns the requests, the gathers, and the membership changes
// asked for (one each time that share of the requests has been handled) of
// this run.
func soakSizes() (requests, gathers, changes int) {
	if *soak || os.Getenv("REQREPLY_SOAK") == "1" {
		return 200_000, 10_000, 20
	}
	return 3_000, 300, 3
}

// SoakGatherSubject is where the soak's gather responders listen: plain
// subscribers, each answering every gather.
const soakGatherSubject = "queuegroup.soak.gather"

// soakGatherers is how many goroutines run gathers at once, and
// soakResponders how many replies each gather waits for.
const (
	soakGatherers  = 16
	soakResponders = 3
	soakTimeout    = 10 * time.Second // per request and per gather: nothing may be lost to a busy machine
)

// TestSoak runs the soak. The gathers are the plain-inbox kind, written
// here (the multireply package is a program, not importable): a fresh inbox
// subscription per gather, the request published with it as reply
// subject, replies read until soakResponders have come or the deadline
// passes, then unsubscribed. Nothing about them is shared between gathers,
// so a reply on the wrong inbox would show as a wrong payload.
func TestSoak(t *testing.T) {
	requests, gathers, changes := soakSizes()
	env := newEnv(t)

	// The queue group: each member records which member handled each
	// request (by its index + 1) and how often, on the responder side.
	handledBy := make([]atomic.Int32, requests+1)
	handledN := make([]atomic.Int32, requests+1)
	var handledAll atomic.Int64
	churn := make(chan struct{}, 1)
	step := int64(requests / (changes + 1))
	var mu sync.Mutex // guards members
	var members []*Member
	join := func() (*Member, error) {
		mu.Lock()
		idx := len(members)
		mu.Unlock()
		name := fmt.Sprintf("member-%d", idx+1)
		m, err := join(env, Subject, Group, name, MemberOptions{Work: func(req []byte) error {
			n, err := strconv.Atoi(string(req))
			if err != nil || n < 1 || n > requests {
				return fmt.Errorf("request %q: not a request number", req)
			}
			handledBy[n].Store(int32(idx + 1))
			handledN[n].Add(1)
			if c := handledAll.Add(1); c%step == 0 && c/step <= int64(changes) {
				select {
				case churn <- struct{}{}:
				default:
				}
			}
			return nil
		}})
		if err != nil {
			return nil, err
		}
		mu.Lock()
		members = append(members, m)
		mu.Unlock()
		return m, nil
	}
	for range 3 {
		_, err := join()
		require.NoError(t, err)
	}

	// Membership changes while the requests flow: at every step of
	// requests handled, a new member joins and the oldest live one drains
	// its connection, as a rolling deploy does.
	stopChurn := make(chan struct{})
	churned := make(chan error, 1)
	var changed atomic.Int32
	go func() {
		live := 0 // index of the oldest live member
		for {
			select {
			case <-churn:
			case <-stopChurn:
				churned <- nil
				return
			}
			if _, err := join(); err != nil {
				churned <- err
				return
			}
			mu.Lock()
			victim := members[live]
			mu.Unlock()
			live++
			if err := victim.Drain(context.Background()); err != nil {
				churned <- err
				return
			}
			changed.Add(1)
		}
	}()
	var stopOnce sync.Once
	stop := func() error {
		var err error
		stopOnce.Do(func() {
			close(stopChurn)
			err = <-churned
		})
		return err
	}
	defer func() { _ = stop() }()

	// The gather responders: plain subscribers, each answering every
	// gather with "<name>:<gather id>", and counting what they sent.
	var gatherSent atomic.Int64
	var responderConns []*nats.Conn
	for i := 1; i <= soakResponders; i++ {
		name := fmt.Sprintf("responder-%d", i)
		rc, err := env.Connect(name)
		require.NoError(t, err)
		_, err = rc.Subscribe(soakGatherSubject, func(m *nats.Msg) {
			gatherSent.Add(1)
			if err := m.Respond([]byte(name + ":" + string(m.Data))); err != nil {
				gatherSent.Add(-1)
			}
		})
		require.NoError(t, err)
		require.NoError(t, rc.Flush())
		responderConns = append(responderConns, rc)
	}

	// Both loads at once, each on its own connection.
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	gc, err := env.Connect("gatherer")
	require.NoError(t, err)
	var gathered soakGathers
	var next atomic.Int64
	var wg, progress sync.WaitGroup
	for range soakGatherers {
		wg.Go(func() {
			for {
				id := next.Add(1)
				if id > int64(gathers) {
					return
				}
				gathered.add(soakGather(gc, id))
			}
		})
	}
	progressDone := make(chan struct{})
	progress.Go(func() { soakProgress(progressDone, requests, gathers, &handledAll, &gathered) })
	start := time.Now()
	res, err := Load(context.Background(), nc, LoadConfig{
		Subject: Subject, Requests: requests, Concurrency: 64, Timeout: soakTimeout, PerRequest: true,
		Settle: func(ctx context.Context) error {
			if err := stop(); err != nil {
				return err
			}
			mu.Lock()
			all := slices.Clone(members)
			mu.Unlock()
			return settleAll(all...)(ctx)
		},
	})
	require.NoError(t, err)
	require.NoError(t, stop())
	wg.Wait() // the gatherers end after the last gather
	close(progressDone)
	progress.Wait()
	elapsed := time.Since(start)
	for _, rc := range responderConns {
		require.NoError(t, settle(context.Background(), "responder", rc))
	}

	// Requests: zero lost, zero duplicated, zero wrong.
	var sent int64
	for _, m := range members {
		sent += m.Answered()
	}
	checkLaws(t, res, 1)
	checkSent(t, res, sent)
	assert.True(t, res.Exact(), "%+v", res)
	assert.False(t, res.Unsettled)
	wrong := 0
	for i, who := range res.PerRequest {
		n := i + 1
		if handledN[n].Load() != 1 || len(who) != 1 || who[0] != fmt.Sprintf("member-%d", handledBy[n].Load()) {
			wrong++
			if wrong <= 5 {
				t.Errorf("request %d: replies from %v, handled %d times, last by member-%d", n, who, handledN[n].Load(), handledBy[n].Load())
			}
		}
	}
	assert.Zero(t, wrong, "wrong replies")
	// A change asked for while the previous one is under way is skipped.
	assert.Positive(t, changed.Load(), "no member was drained")
	assert.LessOrEqual(t, changed.Load(), int32(changes))

	// Gathers: each got one reply from each responder, with its own id,
	// and the responders sent no more than that.
	g := gathered.snapshot()
	assert.EqualValues(t, gathers, g.count)
	assert.Zero(t, g.lost, "gathers short of replies")
	assert.Zero(t, g.wrong, "gather replies for another gather or from a repeated responder")
	assert.Zero(t, g.errs, "gathers that failed")
	assert.EqualValues(t, gathers*soakResponders, gatherSent.Load(), "gather replies sent")
	t.Logf("soak: %d requests (%d answered, %d duplicate, %d late, %d wrong) and %d gathers × %d replies (%d lost, %d wrong) in %v; %d members drained and as many added",
		requests, res.Answered, res.Duplicates, res.Late, wrong, g.count, soakResponders, g.lost, g.wrong, elapsed.Round(time.Millisecond), changed.Load())
}

// soakGather runs gather id on nc: a fresh inbox, the request, and
// soakResponders replies read within soakTimeout, each checked to answer
// this gather from a responder not seen before in it.
func soakGather(nc *nats.Conn, id int64) gatherOutcome {
	payload := strconv.FormatInt(id, 10)
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return gatherOutcome{err: err}
	}
	defer func() { _ = sub.Unsubscribe() }() // the gather is over either way
	// The SUB goes out before the PUB on the same connection, so the server
	// has the inbox before any responder can answer: no flush needed.
	if err := nc.PublishRequest(soakGatherSubject, inbox, []byte(payload)); err != nil {
		return gatherOutcome{err: err}
	}
	deadline := time.Now().Add(soakTimeout)
	seen := map[string]bool{}
	var out gatherOutcome
	for len(seen)+out.wrong < soakResponders {
		m, err := sub.NextMsg(time.Until(deadline))
		if errors.Is(err, nats.ErrTimeout) {
			out.lost = soakResponders - len(seen) - out.wrong
			return out
		}
		if err != nil {
			out.err = err
			return out
		}
		name, got, ok := strings.Cut(string(m.Data), ":")
		if !ok || got != payload || seen[name] {
			out.wrong++
			continue
		}
		seen[name] = true
	}
	return out
}

// gatherOutcome is what one soak gather saw.
type gatherOutcome struct {
	lost, wrong int
	err         error
}

// soakGathers adds up the gathers' outcomes.
type soakGathers struct {
	mu                       sync.Mutex
	count, lost, wrong, errs int
}

func (s *soakGathers) add(o gatherOutcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	s.lost += o.lost
	s.wrong += o.wrong
	if o.err != nil {
		s.errs++
	}
}

func (s *soakGathers) done() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(s.count)
}

func (s *soakGathers) snapshot() soakGathers {
	s.mu.Lock()
	defer s.mu.Unlock()
	return soakGathers{count: s.count, lost: s.lost, wrong: s.wrong, errs: s.errs}
}

// soakProgress writes the soak's progress to stderr once a second until
// done closes, only when stderr is a terminal (a person watching).
func soakProgress(done <-chan struct{}, requests, gathers int, handled *atomic.Int64, gathered *soakGathers) {
	if fi, err := os.Stderr.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			fmt.Fprintf(os.Stderr, "\rsoak: %d/%d requests handled, %d/%d gathers done ", handled.Load(), requests, gathered.done(), gathers)
		case <-done:
			fmt.Fprintln(os.Stderr)
			return
		}
	}
}

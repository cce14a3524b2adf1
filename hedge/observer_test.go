// The Observer hook (WithObserver): what a Client tells an observer of each
// request, as reqreply/otelnats uses it.

package hedge_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/hedge"
	"reqreply/internal/testserver"
)

// observed records what an Observer is told: one call per Start.
type observed struct {
	mu    sync.Mutex
	calls []*observedCall
}

type observedCall struct {
	subject string
	kinds   []hedge.CopyKind
	won     int
	err     error
	ended   int
}

func (o *observed) Start(_ context.Context, subject string) hedge.CallObserver {
	c := &observedCall{subject: subject}
	o.mu.Lock()
	o.calls = append(o.calls, c)
	o.mu.Unlock()
	return c
}

func (c *observedCall) Copy(msg *nats.Msg, cp int, kind hedge.CopyKind) {
	if cp != len(c.kinds) {
		panic("copies out of order")
	}
	c.kinds = append(c.kinds, kind)
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	msg.Header.Set("Copy", strconv.Itoa(cp))
}

func (c *observedCall) Unsent(int, error) {}

func (c *observedCall) End(won int, err error) { c.won, c.err, c.ended = won, err, c.ended+1 }

// An Observer sees every copy a request sends, before it leaves (a header it
// sets reaches the responder), of its kind, and once at the end which copy
// won: a plain answer, a hedge that wins, retries that spend the deadline.
func TestObserver(t *testing.T) {
	s := testserver.New(t)
	resp, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	defer resp.Close()
	// svc.answer echoes the Copy header; svc.hedged holds copy 0 and
	// answers the hedge.
	_, err = resp.Subscribe("svc.answer", func(m *nats.Msg) { _ = m.Respond([]byte(m.Header.Get("Copy"))) })
	require.NoError(t, err)
	first := make(chan struct{}, 1)
	_, err = resp.Subscribe("svc.hedged", func(m *nats.Msg) {
		if m.Header.Get("Copy") == "0" {
			first <- struct{}{}
			return
		}
		_ = m.Respond([]byte(m.Header.Get("Copy")))
	})
	require.NoError(t, err)
	require.NoError(t, resp.Flush())

	cases := []struct {
		name    string
		subject string
		policy  hedge.Policy
		kinds   []hedge.CopyKind // nil: first, then retries
		won     int
		want    []error // the error wraps one of these; nil: no error
	}{
		{name: "answered", subject: "svc.answer", kinds: []hedge.CopyKind{hedge.CopyFirst}, won: 0},
		{name: "hedge won", subject: "svc.hedged", policy: hedge.Policy{Hedge: hedge.Hedge{Delay: time.Hour}},
			kinds: []hedge.CopyKind{hedge.CopyFirst, hedge.CopyHedge}, won: 1},
		{name: "retries spent the deadline", subject: "svc.nobody",
			policy: hedge.Policy{Retry: &hedge.Backoff{Base: time.Millisecond, Max: time.Millisecond}}, won: -1, want: []error{nats.ErrNoResponders, nats.ErrTimeout}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(s.ClientURL())
			require.NoError(t, err)
			defer nc.Close()
			var obs observed
			// The hedge delay (only "hedge won" has one) is over once the
			// responder holds the first copy.
			c, err := hedge.NewClient(nc, tc.policy, hedge.WithObserver(&obs),
				hedge.WithHedgeTimer(func(time.Duration) <-chan time.Time {
					fire := make(chan time.Time, 1)
					go func() {
						<-first
						fire <- time.Now()
					}()
					return fire
				}))
			require.NoError(t, err)
			defer func() { _ = c.Close() }()
			timeout := 10 * time.Second
			if tc.want != nil {
				// Retried until the deadline, which ends it as it comes: during
				// an attempt (nats.ErrNoResponders), a backoff
				// (nats.ErrTimeout) or before the next (ErrBudgetSpent and
				// both).
				timeout = 100 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			msg, err := c.Request(ctx, tc.subject, nil)
			if tc.want != nil {
				require.Error(t, err)
				require.True(t, slices.ContainsFunc(tc.want, func(w error) bool { return errors.Is(err, w) }), "%v wraps none of %v", err, tc.want)
			} else {
				require.NoError(t, err)
				assert.Equal(t, strconv.Itoa(tc.won), string(msg.Data), "the header the observer set reached the responder")
			}
			require.Len(t, obs.calls, 1)
			call := obs.calls[0]
			assert.Equal(t, tc.subject, call.subject)
			assert.Equal(t, 1, call.ended)
			assert.Equal(t, tc.won, call.won)
			assert.Equal(t, err, call.err)
			if tc.kinds != nil {
				assert.Equal(t, tc.kinds, call.kinds)
			} else {
				st := c.Stats()
				require.Len(t, call.kinds, int(st.Sent))
				assert.Equal(t, hedge.CopyFirst, call.kinds[0])
				for _, k := range call.kinds[1:] {
					assert.Equal(t, hedge.CopyRetry, k)
				}
				assert.Equal(t, int(st.Retries), len(call.kinds)-1)
			}
		})
	}
}

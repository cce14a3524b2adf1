// natsext alone holds a drain up; the wrapper's end (leftBehind) does not.

package natsextgather

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/synadia-io/orbit.go/natsext"

	"reqreply/internal/testserver"
)

// queued starts one responder that publishes each payload, in order, to
// the reply subject of every request, then flushes and signals on the
// returned channel: once it has, a flush of the receiver puts them all in
// the requester's client.
func queued(t *testing.T, nc *nats.Conn, subject string, payloads ...string) <-chan struct{} {
	t.Helper()
	sent := make(chan struct{}, 1)
	_, err := nc.Subscribe(subject, func(m *nats.Msg) {
		for _, p := range payloads {
			_ = nc.Publish(m.Reply, []byte(p))
		}
		_ = nc.Flush()
		sent <- struct{}{}
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return sent
}

// natsext itself on a connection that drains, when its context ended before
// it read the replies queued in its inbox (the natsext variant meets this
// when its gather ends before its first reply, as the drain begins): natsext
// returns at once, its unsubscribe is refused, nobody reads the replies,
// and the drain runs out its DrainTimeout (nats.ErrDrainTimeout). The
// wrapper's end, leftBehind, ranges natsext again on a live context: the
// replies are read and counted (Unread), and the drain ends within about a
// round trip.
func TestNatsextLeftBehindDuringDrain(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wrapped bool
		drain   time.Duration // the connection's DrainTimeout
	}{
		{name: "natsext alone", drain: 200 * time.Millisecond},
		{name: "leftBehind", wrapped: true, drain: 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := testserver.New(t).ClientURL()
			rc, err := nats.Connect(url)
			require.NoError(t, err)
			defer rc.Close()
			sent := queued(t, rc, "svc", "r1", "r2", "r3")
			closed := make(chan time.Time, 1)
			nc, err := nats.Connect(url, nats.DrainTimeout(tc.drain), nats.ClosedHandler(func(*nats.Conn) { closed <- time.Now() }))
			require.NoError(t, err)

			// A deadline, so that natsext adds no timeout of its own.
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			xctx := &rearmable{ctx: ctx}
			replies, err := natsext.RequestMany(xctx, nc, "svc", nil)
			require.NoError(t, err)
			<-sent
			require.NoError(t, rc.Flush())
			require.NoError(t, nc.Flush()) // the three replies are queued
			cancel()
			drained := time.Now()
			require.NoError(t, nc.Drain())
			for m, err := range replies {
				assert.Nil(t, m)
				assert.ErrorIs(t, err, context.Canceled)
			}
			if tc.wrapped {
				assert.Equal(t, 3, leftBehind(context.Background(), nc, xctx, replies, nil), "unread")
			}

			var took time.Duration
			select {
			case at := <-closed:
				took = at.Sub(drained)
				t.Logf("the drain took %v", took)
			case <-time.After(30 * time.Second):
				t.Fatal("the drain never ended")
			}
			if !tc.wrapped {
				assert.ErrorIs(t, nc.LastError(), nats.ErrDrainTimeout, "natsext no longer holds the drain: simplify leftBehind")
				return
			}
			assert.False(t, errors.Is(nc.LastError(), nats.ErrDrainTimeout), "%v", nc.LastError())
			assert.Less(t, took, 2*time.Second)
		})
	}
}

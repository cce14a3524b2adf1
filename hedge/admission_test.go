// Admission on its own, with a plain handler and nats.go's own calls: the
// leave at the limit, the rejoin below it, and what WaitIdle and Close
// leave behind. (tail's TestAdmission and TestMemberStateBounded check it
// under the demo's member.)

package hedge_test

import (
	"context"
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

// TestAdmissionLeavesAndRejoins holds k requests in progress: the server's
// interest in the subject drops to 0, a request then finds no responders,
// the requests taken are still answered, and the first Done brings the
// responder back.
func TestAdmissionLeavesAndRejoins(t *testing.T) {
	for _, k := range []int{1, 3} {
		t.Run("k="+strconv.Itoa(k), func(t *testing.T) {
			s := testserver.New(t)
			nc, err := nats.Connect(s.ClientURL())
			require.NoError(t, err)
			defer nc.Close()
			release := make(chan struct{})
			var adm *hedge.Admission
			adm = hedge.NewAdmission(k, func(h nats.MsgHandler) (*nats.Subscription, error) {
				return nc.QueueSubscribe("work", "workers", h)
			}, func(m *nats.Msg) {
				// Each request is worked on apart, as the demo's workers do.
				go func() {
					<-release
					adm.Done()
					_ = m.Respond(m.Data)
				}()
			})
			var churn churnLog
			adm.Observe(churn.add)
			require.NoError(t, adm.Join(nil))
			require.NoError(t, testserver.WaitForSubscribers(s, "work", 1))

			inbox := nc.NewInbox()
			replies, err := nc.SubscribeSync(inbox)
			require.NoError(t, err)
			for i := 1; i <= k; i++ {
				require.NoError(t, nc.PublishRequest("work", inbox, []byte(strconv.Itoa(i))))
				require.NoError(t, nc.Flush())
			}
			require.NoError(t, testserver.WaitForSubscribers(s, "work", 0))
			_, err = nc.Request("work", nil, time.Minute)
			require.ErrorIs(t, err, nats.ErrNoResponders)
			joins, leaves := adm.Churn()
			assert.Equal(t, [2]int64{1, 1}, [2]int64{joins, leaves})

			close(release)
			for range k {
				_, err := replies.NextMsg(testserver.ReadyTimeout)
				require.NoError(t, err, "a request taken before leaving was not answered")
			}
			require.NoError(t, adm.WaitIdle(context.Background()))
			require.NoError(t, testserver.WaitForSubscribers(s, "work", 1))
			joins, leaves = adm.Churn()
			assert.Equal(t, [2]int64{2, 1}, [2]int64{joins, leaves})

			subs := adm.Close()
			for _, sub := range subs {
				_ = sub.Unsubscribe()
			}
			_, waiters := adm.Held()
			assert.Zero(t, waiters)
			// Close took the admission's lock: the observer has seen all.
			assert.Equal(t, []bool{true, false}, churn.all(), "Observe: a leave, then a rejoin (not the first join)")
		})
	}
}

// churnLog keeps what Admission.Observe reports.
type churnLog struct {
	mu     sync.Mutex
	leaves []bool
}

func (l *churnLog) add(leave bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leaves = append(l.leaves, leave)
}

func (l *churnLog) all() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bool(nil), l.leaves...)
}

// TestAdmissionWaitIdleGivenUp checks that a WaitIdle given up while a
// request is in progress leaves no waiter behind.
func TestAdmissionWaitIdleGivenUp(t *testing.T) {
	s := testserver.New(t)
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	taken, release := make(chan struct{}), make(chan struct{})
	var adm *hedge.Admission
	adm = hedge.NewAdmission(0, func(h nats.MsgHandler) (*nats.Subscription, error) {
		return nc.Subscribe("work", h)
	}, func(*nats.Msg) {
		close(taken)
		<-release
		adm.Done()
	})
	require.NoError(t, adm.Join(nil))
	require.NoError(t, nc.Publish("work", nil))
	<-taken
	for range 100 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.ErrorIs(t, adm.WaitIdle(ctx), context.Canceled)
	}
	_, waiters := adm.Held()
	assert.Zero(t, waiters, "WaitIdle calls given up left waiters")
	close(release)
	require.NoError(t, adm.WaitIdle(context.Background()))
	_, leaves := adm.Churn()
	assert.Zero(t, leaves, "a limit of 0 never leaves")
}

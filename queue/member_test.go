// Join, Leave, Drain and Settle on a real embedded nats-server.

package queue_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/testserver"
	"reqreply/queue"
)

// connect opens a connection to s, closed when the test ends.
func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func echo(m *nats.Msg) { _ = m.Respond(m.Data) }

// TestJoinErrors: Join returns nats.go's error of the subscribe, naming
// the subject and group, and a SubscribeFunc's own error.
func TestJoinErrors(t *testing.T) {
	s := testserver.New(t)
	closed := connect(t, s.ClientURL())
	closed.Close()
	refused := errors.New("refused")
	tests := []struct {
		name    string
		nc      *nats.Conn
		subject string
		group   string
		opts    []queue.Option
		want    error
	}{
		{name: "bad subject", subject: "a..b", group: "g", want: nats.ErrBadSubject},
		{name: "bad queue name", subject: "a", group: "g h", want: nats.ErrBadQueueName},
		{name: "closed connection", nc: closed, subject: "a", group: "g", want: nats.ErrConnectionClosed},
		{name: "subscribe func", subject: "a", group: "g", want: refused, opts: []queue.Option{queue.WithSubscribe(
			func(context.Context, *nats.Conn, string, string, func() (*nats.Subscription, error)) (*nats.Subscription, error) {
				return nil, refused
			})}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nc := tc.nc
			if nc == nil {
				nc = connect(t, s.ClientURL())
			}
			_, err := queue.Join(nc, tc.subject, tc.group, echo, tc.opts...)
			require.ErrorIs(t, err, tc.want)
			assert.Contains(t, err.Error(), `subscribe "`+tc.subject+`" in group "`+tc.group+`"`)
		})
	}
}

// TestJoinConfirmsInterest: once Join returns, the server has the
// subscription (plain or queue), and a request from another connection is
// answered.
func TestJoinConfirmsInterest(t *testing.T) {
	for _, group := range []string{"workers", ""} {
		t.Run("group="+group, func(t *testing.T) {
			s := testserver.New(t)
			var subscribed atomic.Bool
			m, err := queue.Join(connect(t, s.ClientURL()), "work", group, echo, queue.WithSubscribe(
				func(_ context.Context, nc *nats.Conn, _, _ string, subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error) {
					subscribed.Store(true)
					sub, err := subscribe()
					if err == nil {
						err = nc.Flush()
					}
					return sub, err
				}))
			require.NoError(t, err)
			assert.True(t, subscribed.Load(), "Join subscribed through the SubscribeFunc")
			assert.Equal(t, 1, s.GlobalAccount().Interest("work"), "the server has it, without a wait")
			assert.Equal(t, group, m.Subscription().Queue)
			reply, err := connect(t, s.ClientURL()).Request("work", []byte("hi"), 2*time.Second)
			require.NoError(t, err)
			assert.Equal(t, "hi", string(reply.Data))
		})
	}
}

// TestLeaveAnswersWhatItHolds: a member that leaves while it works on a
// request answers it before Leave returns, and gets nothing more.
func TestLeaveAnswersWhatItHolds(t *testing.T) {
	s := testserver.New(t)
	started, release := make(chan struct{}), make(chan struct{})
	m, err := queue.Join(connect(t, s.ClientURL()), "work", "workers", func(msg *nats.Msg) {
		close(started)
		<-release
		_ = msg.Respond([]byte("done"))
	})
	require.NoError(t, err)
	nc := connect(t, s.ClientURL())
	replied := make(chan error, 1)
	go func() {
		_, err := nc.Request("work", nil, 10*time.Second)
		replied <- err
	}()
	<-started
	left := make(chan error, 1)
	go func() { left <- m.Leave(context.Background()) }()
	require.NoError(t, testserver.WaitForNoInterest(s, "work"))
	close(release)
	require.NoError(t, <-replied)
	require.NoError(t, <-left)
	assert.False(t, m.Subscription().IsValid())
	assert.True(t, m.Conn().IsConnected(), "Leave keeps the connection")
	_, err = nc.Request("work", nil, time.Second)
	assert.ErrorIs(t, err, nats.ErrNoResponders)
}

// TestLeaveEndsOnClose: a connection closed while its member leaves ends
// Leave at once with nats.ErrConnectionClosed; Leave on a closed
// connection fails too; a cancelled context ends the wait.
func TestLeaveEndsOnClose(t *testing.T) {
	s := testserver.New(t)
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	m, err := queue.Join(connect(t, s.ClientURL()), "work", "workers", func(*nats.Msg) {
		close(started)
		<-release
	})
	require.NoError(t, err)
	require.NoError(t, connect(t, s.ClientURL()).PublishRequest("work", "nobody", nil))
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, m.Leave(ctx), context.DeadlineExceeded, "held by the request in hand")

	left := make(chan error, 1)
	go func() { left <- m.Leave(context.Background()) }()
	m.Conn().Close()
	select {
	case err := <-left:
		assert.ErrorIs(t, err, nats.ErrConnectionClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Leave went on after the close")
	}
	assert.ErrorIs(t, m.Leave(context.Background()), nats.ErrConnectionClosed)
}

// TestDrainAndSettle: Settle makes a handler's count final; Drain answers
// what the member holds and closes its connection; a closed connection is
// settled already, and a second Drain fails.
func TestDrainAndSettle(t *testing.T) {
	s := testserver.New(t)
	var handled atomic.Int64
	m, err := queue.Join(connect(t, s.ClientURL()), "work", "workers", func(*nats.Msg) {
		time.Sleep(time.Millisecond) // some work, so messages queue up
		handled.Add(1)
	})
	require.NoError(t, err)
	nc := connect(t, s.ClientURL())
	for range 50 {
		require.NoError(t, nc.Publish("work", nil))
	}
	require.NoError(t, nc.Flush())
	require.NoError(t, m.Settle(context.Background()))
	assert.Equal(t, int64(50), handled.Load(), "settled: every message sent was handled")

	require.NoError(t, m.Drain(context.Background()))
	assert.True(t, m.Conn().IsClosed())
	assert.NoError(t, m.Settle(context.Background()), "closed: settled already")
	assert.ErrorIs(t, m.Drain(context.Background()), nats.ErrConnectionClosed)
}

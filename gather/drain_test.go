package gather_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/gather"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
)

// Drains, as on every deploy: what a gather in flight keeps, what a gather
// started during a drain does, and that an ended gather never holds a drain.

// twoStep starts a responder that answers each request with "one" at once
// and with "two" once release is closed.
func twoStep(t *testing.T, nc *nats.Conn, subject string, release <-chan struct{}) {
	t.Helper()
	_, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if m.Respond([]byte("one")) != nil {
			return
		}
		<-release
		_ = m.Respond([]byte("two"))
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
}

// holdDrain subscribes a handler on nc that blocks on its first message
// until release is closed, and sends it two messages: one in the handler,
// one pending. nc's drain then stays in its first phase (subscriptions
// draining, publishes allowed) until release: a service busy with a request
// when its deploy begins.
func holdDrain(t *testing.T, nc *nats.Conn, release <-chan struct{}) {
	t.Helper()
	inHandler := make(chan struct{}, 2)
	_, err := nc.Subscribe("busy", func(*nats.Msg) {
		inHandler <- struct{}{}
		<-release
	})
	require.NoError(t, err)
	require.NoError(t, nc.Publish("busy", nil))
	require.NoError(t, nc.Publish("busy", nil))
	require.NoError(t, nc.Flush())
	<-inHandler
}

// A drain of the requester's connection that begins while a gather waits:
// the shared Mux keeps every reply until the gather's own stop condition,
// even one sent after the drain has ended and closed the connection. The
// inbox and natsext variants subscribe on the connection itself, and
// nats.go's drain unsubscribes them at once: they end with StopClosed and
// the replies so far (README: "Drains").
func TestDrainMidGather(t *testing.T) {
	for _, name := range variants.Names {
		t.Run("variant="+name, func(t *testing.T) {
			env := newEnv(t)
			release := make(chan struct{})
			rc := connect(t, env, "responders")
			twoStep(t, rc, "svc", release)
			nc := connect(t, env, "requester")
			v, free, err := variants.New(name, nc)
			require.NoError(t, err)
			defer func() { _ = free() }()

			s, err := v.Stream(context.Background(), "svc", nil, gather.Timeout(time.Hour), gather.MaxReplies(2))
			require.NoError(t, err)
			var got []string
			for r := range s.Replies() {
				got = append(got, string(r.Msg.Data))
				if len(got) == 1 {
					// The drain runs to its end (the connection closes); only
					// then is the second reply sent.
					require.NoError(t, nc.Drain())
					require.Eventually(t, nc.IsClosed, 30*time.Second, time.Millisecond)
					close(release)
				}
			}
			res, err := s.Result()
			if name == "shared" {
				require.NoError(t, err)
				assert.Equal(t, gather.StopMax, res.Reason)
				assert.Equal(t, []string{"one", "two"}, got)
				return
			}
			assert.Equal(t, gather.StopClosed, res.Reason)
			assert.True(t, errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionDraining) ||
				errors.Is(err, nats.ErrBadSubscription), "%v", err)
			assert.Equal(t, []string{"one"}, got)
		})
	}
}

// A gather started while the connection drains its subscriptions works as
// nc.Request does then (both get their replies with the shared variant);
// once the drain has closed the connection, both fail with
// nats.ErrConnectionClosed. The inbox and natsext variants must subscribe,
// which nats.go refuses while draining: nats.ErrConnectionDraining.
func TestGatherStartedDuringDrain(t *testing.T) {
	env := newEnv(t)
	echoN(2)(t, connect(t, env, "responders"), "svc")
	nc := connect(t, env, "requester")
	vs := newVariants(t, nc)
	// nc.Request's own response subscription exists before the drain.
	_, err := nc.Request("svc", nil, 10*time.Second)
	require.NoError(t, err)

	release := make(chan struct{})
	holdDrain(t, nc, release)
	require.NoError(t, nc.Drain())
	require.Equal(t, nats.DRAINING_SUBS, nc.Status())

	_, err = nc.Request("svc", nil, 10*time.Second)
	require.NoError(t, err, "nc.Request while subscriptions drain")
	for _, v := range vs {
		res, err := gather.Gather(context.Background(), v, "svc", nil, gather.Timeout(10*time.Second), gather.MaxReplies(2))
		if v.Name() == "shared" {
			require.NoError(t, err)
			assert.Equal(t, 2, res.Count)
			continue
		}
		assert.ErrorIs(t, err, nats.ErrConnectionDraining, v.Name())
		assert.Equal(t, gather.StopClosed, res.Reason, v.Name())
	}

	close(release)
	require.Eventually(t, nc.IsClosed, 30*time.Second, time.Millisecond)
	assert.False(t, errors.Is(nc.LastError(), nats.ErrDrainTimeout), "drain held up: %v", nc.LastError())
	_, err = nc.Request("svc", nil, 10*time.Second)
	assert.ErrorIs(t, err, nats.ErrConnectionClosed)
	for _, v := range vs {
		_, err := gather.Gather(context.Background(), v, "svc", nil, gather.Timeout(10*time.Second))
		assert.ErrorIs(t, err, nats.ErrConnectionClosed, v.Name())
	}
}

// A gather that ends while its connection drains never holds the drain up,
// in any variant, however it ends and whatever was left unread: the drain
// ends without nats.ErrDrainTimeout. (nats.go refuses an unsubscribe while
// draining; the inbox variant and the natsext wrapper then discard what is
// pending: TestGatherEndedDuringDrainReleasesIt covers every stop.)
func TestEndedGatherDoesNotHoldDrain(t *testing.T) {
	ends := []struct {
		name string
		opts []gather.Option
		stop func(n int) bool // break after the nth reply?
	}{
		{name: "break", opts: []gather.Option{gather.Timeout(time.Hour)}, stop: func(int) bool { return true }},
		{name: "max", opts: []gather.Option{gather.Timeout(time.Hour), gather.MaxReplies(1)}},
		{name: "sentinel", opts: []gather.Option{gather.Timeout(time.Hour), gather.Sentinel(func(m *nats.Msg) bool { return string(m.Data) == "b" })}},
	}
	for _, end := range ends {
		for _, name := range variants.Names {
			t.Run(end.name+"/variant="+name, func(t *testing.T) {
				env := newEnv(t)
				sequence("a", "b", "c", "d")(t, connect(t, env, "responders"), "svc")
				nc := connect(t, env, "requester")
				v, free, err := variants.New(name, nc)
				require.NoError(t, err)
				defer func() { _ = free() }()
				s, err := v.Stream(context.Background(), "svc", nil, end.opts...)
				require.NoError(t, err)
				n := 0
				for range s.Replies() {
					n++
					require.NoError(t, nc.Drain())
					if end.stop != nil && end.stop(n) {
						break
					}
				}
				if n == 0 {
					require.NoError(t, nc.Drain())
				}
				res, _ := s.Result()
				if name == "shared" || end.name != "sentinel" {
					assert.True(t, res.Reason.Normal(), "%s", res.Reason)
				} else {
					// The drain may take the inbox away before the sentinel
					// comes: then the gather ends with StopClosed.
					assert.True(t, res.Reason.Normal() || res.Reason == gather.StopClosed, "%s", res.Reason)
				}
				require.Eventually(t, nc.IsClosed, 30*time.Second, time.Millisecond)
				assert.False(t, errors.Is(nc.LastError(), nats.ErrDrainTimeout), "the drain waited for an ended gather: %v", nc.LastError())
			})
		}
	}
}

// Mux.Close is safe while its connection drains (no "connection draining"),
// and a cancel that ends a gather with dropped replies wraps
// nats.ErrSlowConsumer too, as PendingLimits says.
func TestMuxCloseWhileDraining(t *testing.T) {
	env := newEnv(t)
	both(sequence("one"), silent)(t, connect(t, env, "responders"), "svc")
	nc := connect(t, env, "requester")
	m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	release := make(chan struct{})
	holdDrain(t, nc, release)
	require.NoError(t, nc.Drain())
	s, err := m.Stream(context.Background(), "svc", nil, gather.Timeout(time.Hour))
	require.NoError(t, err)
	for range s.Replies() {
		assert.NoError(t, m.Close(), "Close while the connection drains")
	}
	res, err := s.Result()
	assert.Equal(t, gather.StopClosed, res.Reason)
	assert.ErrorIs(t, err, gather.ErrMuxClosed)
	assert.NoError(t, m.Close(), "twice")
	close(release)
}

func TestCancelWithDropsWrapsSlowConsumer(t *testing.T) {
	const burst = 20
	env := newEnv(t)
	rc := connect(t, env, "responders")
	sent := make(chan struct{}, 1)
	_, err := rc.Subscribe("svc", func(m *nats.Msg) {
		for range burst {
			_ = m.Respond([]byte("x"))
		}
		sent <- struct{}{}
	})
	require.NoError(t, err)
	require.NoError(t, rc.Flush())
	nc := connect(t, env, "requester")
	for _, v := range newVariants(t, nc) {
		if v.Name() == "natsext" {
			continue // no pending limits to set
		}
		t.Run("variant="+v.Name(), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := v.Stream(ctx, "svc", nil, gather.Timeout(time.Hour), gather.PendingLimits(1, gather.DefaultPendingBytes))
			require.NoError(t, err)
			for range s.Replies() {
				<-sent
				require.NoError(t, rc.Flush())
				flushReceiver(t, v, nc)
				routed(t, v)
				cancel()
			}
			res, err := s.Result()
			assert.Equal(t, gather.StopCancelled, res.Reason)
			assert.ErrorIs(t, err, context.Canceled)
			assert.Positive(t, res.Dropped)
			assert.ErrorIs(t, err, nats.ErrSlowConsumer)
		})
	}
}

// flushReceiver flushes the connection on which v receives replies: once it
// returns, what the server had sent to v is in the client.
func flushReceiver(t testing.TB, v gather.Variant, nc *nats.Conn) {
	t.Helper()
	if m, ok := v.(*gather.Mux); ok {
		nc = m.RC()
	}
	require.NoError(t, nc.Flush())
}

// routed waits until the Mux's handler has routed every message its
// connection has received (nats.go counts a message pending until its
// handler returns); the other variants have no handler in between.
func routed(t testing.TB, v gather.Variant) {
	t.Helper()
	if m, ok := v.(*gather.Mux); ok {
		require.Eventually(t, func() bool { n, _, _ := m.Sub().Pending(); return n <= 0 }, 30*time.Second, time.Millisecond)
	}
}

// Every publish failure that can be known before sending is refused before
// anything is subscribed, in every variant (natsext called directly leaks
// its inbox then: TestNatsextDirectLeaksOnPublishFailure): headers on a
// server without header support, a closed or draining connection, a payload
// or payload and headers over the max payload.
func TestPublishFailuresLeaveNothing(t *testing.T) {
	noHeaders := func(o *server.Options) { o.NoHeaderSupport = true }
	hdr := gather.Header(nats.Header{"Padding": []string{string(make([]byte, 100))}})
	tests := []struct {
		name    string
		server  []testserver.Option
		setup   func(t *testing.T, nc *nats.Conn)
		data    []byte
		opts    []gather.Option
		wantErr error
	}{
		{name: "headers not supported", server: []testserver.Option{noHeaders}, opts: []gather.Option{hdr}, wantErr: nats.ErrHeadersNotSupported},
		{name: "expect without header support", server: []testserver.Option{noHeaders}, opts: []gather.Option{gather.Expect("r1")}, wantErr: nats.ErrHeadersNotSupported},
		{name: "payload too large", server: []testserver.Option{testserver.WithMaxPayload(1024)}, data: make([]byte, 2048), wantErr: nats.ErrMaxPayload},
		{name: "payload and headers too large", server: []testserver.Option{testserver.WithMaxPayload(1024)}, data: make([]byte, 1000), opts: []gather.Option{hdr}, wantErr: nats.ErrMaxPayload},
		{name: "closed", setup: func(_ *testing.T, nc *nats.Conn) { nc.Close() }, wantErr: nats.ErrConnectionClosed},
		{name: "draining", setup: func(t *testing.T, nc *nats.Conn) {
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			holdDrain(t, nc, release)
			require.NoError(t, nc.Drain())
		}, wantErr: nats.ErrConnectionDraining},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, tc.server...)
			echoN(1)(t, connect(t, env, "responders"), "svc")
			nc := connect(t, env, "requester")
			vs := newVariants(t, nc)
			subs := nc.NumSubscriptions()
			if tc.setup != nil {
				tc.setup(t, nc)
			}
			for _, v := range vs {
				if tc.name == "draining" && v.Name() == "shared" {
					continue // the Mux still sends: TestGatherStartedDuringDrain
				}
				_, err := gather.Gather(context.Background(), v, "svc", tc.data, append(tc.opts, gather.Timeout(10*time.Second))...)
				assert.ErrorIs(t, err, tc.wantErr, v.Name())
				if !nc.IsClosed() {
					assert.Equal(t, subs+drainHolder(tc.name), nc.NumSubscriptions(), "%s left a subscription", v.Name())
				}
			}
		})
	}
}

// drainHolder is the subscription holdDrain adds.
func drainHolder(name string) int {
	if name == "draining" {
		return 1
	}
	return 0
}

// Close from several goroutines at once is safe; and once nc has closed
// (drained or not) and no gather runs, the Mux closes its own connection.
func TestMuxLifecycle(t *testing.T) {
	t.Run("concurrent Close", func(t *testing.T) {
		env := newEnv(t)
		m, err := gather.NewMux(connect(t, env, "requester"), gather.WithDenials(variants.Hook{}))
		require.NoError(t, err)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { assert.NoError(t, m.Close()) })
		}
		wg.Wait()
		assert.True(t, m.RC().IsClosed())
	})
	for _, drain := range []bool{false, true} {
		t.Run(fmt.Sprintf("nc closed, drained %v", drain), func(t *testing.T) {
			env := newEnv(t)
			nc := connect(t, env, "requester")
			m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
			require.NoError(t, err)
			defer func() { _ = m.Close() }()
			if drain {
				require.NoError(t, nc.Drain())
			} else {
				nc.Close()
			}
			require.Eventually(t, m.RC().IsClosed, 30*time.Second, time.Millisecond)
			_, err = gather.Gather(context.Background(), m, "svc", nil)
			assert.ErrorIs(t, err, nats.ErrConnectionClosed)
		})
	}
}

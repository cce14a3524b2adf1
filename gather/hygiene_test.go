package gather_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/synadia-io/orbit.go/natsext"

	"reqreply/gather"
	"reqreply/gather/natsextgather"
	"reqreply/internal/cli"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
)

// Bad options are refused before anything is subscribed or published, with
// errors that wrap nats' sentinel errors, by every variant.
func TestBadInput(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		nilConn bool
		ctx     context.Context
		subject string
		opts    []gather.Option
		wantErr []error
	}{
		{name: "nil connection", nilConn: true, subject: "a", wantErr: []error{nats.ErrInvalidArg, nats.ErrInvalidConnection}},
		{name: "nil context", ctx: nil, subject: "a", wantErr: []error{nats.ErrInvalidContext}},
		{name: "empty subject", subject: "", wantErr: []error{nats.ErrBadSubject}},
		{name: "wildcard token", subject: "svc.*", wantErr: []error{nats.ErrBadSubject}},
		{name: "full wildcard", subject: "svc.>", wantErr: []error{nats.ErrBadSubject}},
		{name: "empty token", subject: "svc..x", wantErr: []error{nats.ErrBadSubject}},
		{name: "white space", subject: "svc x", wantErr: []error{nats.ErrBadSubject}},
		{name: "max zero", subject: "a", opts: []gather.Option{gather.MaxReplies(0)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "max negative", subject: "a", opts: []gather.Option{gather.MaxReplies(-1)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "stall zero", subject: "a", opts: []gather.Option{gather.Stall(0)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "stall negative", subject: "a", opts: []gather.Option{gather.Stall(-time.Second)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "stall equal to the deadline", subject: "a", opts: []gather.Option{gather.Timeout(time.Second), gather.Stall(time.Second)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "stall past the deadline", subject: "a", opts: []gather.Option{gather.Timeout(time.Second), gather.Stall(time.Minute)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "stall past the default deadline", subject: "a", opts: []gather.Option{gather.Stall(2 * gather.DefaultTimeout)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "timeout zero", subject: "a", opts: []gather.Option{gather.Timeout(0)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "timeout negative", subject: "a", opts: []gather.Option{gather.Timeout(-time.Second)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "pending limit zero", subject: "a", opts: []gather.Option{gather.PendingLimits(0, 1)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "expect nobody", subject: "a", opts: []gather.Option{gather.Expect()}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "expect an empty id", subject: "a", opts: []gather.Option{gather.Expect("a", "")}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "expect one id twice", subject: "a", opts: []gather.Option{gather.Expect("a", "b", "a")}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "stop when nil", subject: "a", opts: []gather.Option{gather.StopWhen(nil)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "adaptive stall margin zero", subject: "a", opts: []gather.Option{gather.AdaptiveStall(0)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "adaptive stall margin past the deadline", subject: "a", opts: []gather.Option{gather.Timeout(time.Second), gather.AdaptiveStall(time.Second)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "adaptive stall with stall", subject: "a", opts: []gather.Option{gather.Stall(time.Millisecond), gather.AdaptiveStall(time.Millisecond)}, wantErr: []error{nats.ErrInvalidArg}},
		{name: "context already cancelled", ctx: cancelled, subject: "a", wantErr: []error{context.Canceled}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t)
			nc := connect(t, env, "requester")
			for _, v := range newVariants(t, nc) {
				t.Run("variant="+v.Name(), func(t *testing.T) {
					if tc.nilConn {
						v = nilVariant(v)
					}
					ctx := tc.ctx
					if ctx == nil && tc.name != "nil context" {
						ctx = context.Background()
					}
					before, subs := outMsgs(v, nc), nc.NumSubscriptions()
					s, err := v.Stream(ctx, tc.subject, []byte("x"), tc.opts...)
					assert.Nil(t, s)
					for _, want := range tc.wantErr {
						assert.ErrorIs(t, err, want)
					}
					assert.Equal(t, before, outMsgs(v, nc), "nothing published")
					assert.Equal(t, subs, nc.NumSubscriptions(), "nothing subscribed")
				})
			}
		})
	}
}

// nilVariant returns v's kind of variant with no connection.
func nilVariant(v gather.Variant) gather.Variant {
	switch v.(type) {
	case gather.Inbox:
		return gather.Inbox{}
	case natsextgather.Natsext:
		return natsextgather.Natsext{}
	}
	return (*gather.Mux)(nil)
}

func TestNewMuxBadInput(t *testing.T) {
	_, err := gather.NewMux(nil)
	assert.ErrorIs(t, err, nats.ErrInvalidArg)

	env := newEnv(t)
	nc := connect(t, env, "requester")
	nc.Close()
	_, err = gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
	assert.ErrorIs(t, err, nats.ErrConnectionClosed)

	_, _, err = variants.New("fastest", nc)
	assert.ErrorIs(t, err, nats.ErrInvalidArg)
}

// A Stream that is never ranged subscribes and publishes nothing, with every
// variant. natsext's own iterator, called directly, has already subscribed
// and published; never ranged, it keeps its subscription past its deadline.
func TestNeverRangedStreamHoldsNothing(t *testing.T) {
	env := newEnv(t)
	echoN(2)(t, connect(t, env, "responders"), "svc")
	nc := connect(t, env, "requester")
	for _, v := range newVariants(t, nc) {
		t.Run("variant="+v.Name(), func(t *testing.T) {
			before, subs := outMsgs(v, nc), nc.NumSubscriptions()
			s, err := v.Stream(context.Background(), "svc", nil, gather.Timeout(time.Millisecond))
			require.NoError(t, err)
			require.NotNil(t, s)
			assert.Equal(t, before, outMsgs(v, nc))
			assert.Equal(t, subs, nc.NumSubscriptions())
		})
	}
	t.Run("natsext called directly keeps its subscription", func(t *testing.T) {
		nc := connect(t, env, "natsext")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_, err := natsext.RequestMany(ctx, nc, "svc", nil)
		require.NoError(t, err)
		<-ctx.Done() // its deadline has passed...
		require.NoError(t, nc.Flush())
		assert.Equal(t, 1, nc.NumSubscriptions(), "...and the inbox is still subscribed")
		// Its unread replies would hold a drain up until the drain timeout.
		nc.Close()
	})
}

// A per-request inbox under the connection's request-mux prefix gets every
// reply twice once the connection has made a Request. The inbox and shared
// variants use nc.NewInbox and receive each reply once; natsext uses
// nc.NewRespInbox and receives twice as many messages as it yields.
func TestInMsgsEqualReplies(t *testing.T) {
	const responders = 3
	env := newEnv(t)
	responderConn := connect(t, env, "responders")
	echoN(responders)(t, responderConn, "svc")
	echoData(t, responderConn, "warm-up")
	nc := connect(t, env, "requester")
	for _, v := range newVariants(t, nc) {
		t.Run("variant="+v.Name(), func(t *testing.T) {
			// Any Request makes nats.go subscribe to its response mux.
			_, err := nc.Request("warm-up", nil, time.Second)
			require.NoError(t, err)

			// The Mux receives on its own connection.
			rx := nc
			if m, ok := v.(*gather.Mux); ok {
				rx = m.RC()
			}
			before := rx.Stats().InMsgs
			res, err := gather.Gather(context.Background(), v, "svc", nil, gather.Timeout(time.Minute), gather.MaxReplies(responders))
			require.NoError(t, err)
			require.Equal(t, responders, res.Count)
			// Every reply sent has reached the client once the responders'
			// and then the requester's flushes return.
			require.NoError(t, responderConn.Flush())
			require.NoError(t, rx.Flush())
			got := int(rx.Stats().InMsgs - before)
			if v.Name() == "natsext" {
				assert.Equal(t, 2*responders, got, "natsext's response inbox matches the request mux too")
				return
			}
			assert.Equal(t, responders, got)
		})
	}
}

// natsext called directly subscribes before it publishes and keeps its inbox
// when the publish fails; the wrapper refuses first every publish failure
// it can detect (TestPublishFailuresLeaveNothing).
func TestNatsextDirectLeaksOnPublishFailure(t *testing.T) {
	env := newEnv(t, testserver.WithMaxPayload(1024))
	nc := connect(t, env, "natsext")
	_, err := natsext.RequestMany(context.Background(), nc, "svc", make([]byte, 2048))
	assert.ErrorIs(t, err, nats.ErrMaxPayload)
	assert.Equal(t, 1, nc.NumSubscriptions())
}

// A burst larger than the gather's pending limit is reported: the replies
// that fit are returned, the rest counted in Dropped, and the error wraps
// nats.ErrSlowConsumer. natsext has no pending limit to set.
func TestBurstOverPendingLimit(t *testing.T) {
	const burst, limit = 40, 4
	env := newEnv(t)
	responderConn := connect(t, env, "responders")
	var wg sync.WaitGroup
	_, err := responderConn.Subscribe("svc", func(m *nats.Msg) {
		defer wg.Done()
		for i := range burst {
			if err := m.Respond([]byte(strconv.Itoa(i))); err != nil {
				return
			}
		}
	})
	require.NoError(t, err)
	require.NoError(t, responderConn.Flush())
	nc := connect(t, env, "requester")
	for _, v := range newVariants(t, nc) {
		t.Run("variant="+v.Name(), func(t *testing.T) {
			opts := []gather.Option{gather.Timeout(time.Hour), gather.Stall(300 * time.Millisecond), gather.PendingLimits(limit, gather.DefaultPendingBytes)}
			s, err := v.Stream(context.Background(), "svc", nil, opts...)
			if v.Name() == "natsext" {
				assert.ErrorIs(t, err, nats.ErrInvalidArg)
				return
			}
			require.NoError(t, err)
			wg.Add(1)
			n := 0
			for range s.Replies() {
				n++
				if n == 1 {
					// Hold the consumer until the whole burst has reached the
					// client: the responder has sent it all, its flush means the
					// server has it, the requester's flush that the client has.
					wg.Wait()
					require.NoError(t, responderConn.Flush())
					flushReceiver(t, v, nc)
					routed(t, v)
				}
			}
			res, err := s.Result()
			assert.ErrorIs(t, err, nats.ErrSlowConsumer)
			assert.Equal(t, gather.StopStalled, res.Reason)
			assert.Positive(t, res.Dropped)
			assert.Equal(t, burst, res.Count+res.Dropped, "every reply is either returned or counted as dropped")
		})
	}
}

// Many gathers share one Mux at once; each gets exactly its own replies.
func TestMuxConcurrentGathers(t *testing.T) {
	const gathers, responders = 32, 3
	env := newEnv(t)
	rc := connect(t, env, "responders")
	for range responders {
		echoData(t, rc, "svc")
	}
	m, err := gather.NewMux(connect(t, env, "requester"), gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	defer func() { require.NoError(t, m.Close()) }()

	var wg sync.WaitGroup
	errs := make(chan error, gathers)
	for i := range gathers {
		wg.Go(func() {
			want := fmt.Sprintf("gather-%d", i)
			res, err := gather.Gather(context.Background(), m, "svc", []byte(want), gather.Timeout(10*time.Second), gather.MaxReplies(responders))
			if err != nil {
				errs <- err
				return
			}
			for _, r := range res.Replies {
				if string(r.Msg.Data) != want {
					errs <- fmt.Errorf("%s got %q", want, r.Msg.Data)
				}
			}
			if res.Count != responders {
				errs <- fmt.Errorf("%s got %d replies", want, res.Count)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A gather whose consumer stops reading does not hold up another gather on
// the same Mux: the Mux's handler never blocks.
func TestMuxSlowGatherBlocksNoOne(t *testing.T) {
	env := newEnv(t)
	echoN(3)(t, connect(t, env, "responders"), "svc")
	m, err := gather.NewMux(connect(t, env, "requester"), gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	defer func() { require.NoError(t, m.Close()) }()

	slow, err := m.Stream(context.Background(), "svc", nil, gather.Timeout(time.Hour), gather.MaxReplies(3))
	require.NoError(t, err)
	for range slow.Replies() {
		// The slow consumer sits on its first reply while a second gather
		// runs to completion.
		res, err := gather.Gather(context.Background(), m, "svc", nil, gather.Timeout(10*time.Second), gather.MaxReplies(3))
		require.NoError(t, err)
		assert.Equal(t, 3, res.Count)
		break
	}
	res, err := slow.Result()
	require.NoError(t, err)
	assert.Equal(t, gather.StopCaller, res.Reason)
}

// Closing the Mux ends the gathers running on it with StopClosed.
func TestMuxCloseMidGather(t *testing.T) {
	env := newEnv(t)
	both(sequence("one"), silent)(t, connect(t, env, "responders"), "svc")
	m, err := gather.NewMux(connect(t, env, "requester"), gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	s, err := m.Stream(context.Background(), "svc", nil, gather.Timeout(time.Hour))
	require.NoError(t, err)
	for range s.Replies() {
		require.NoError(t, m.Close())
	}
	res, err := s.Result()
	assert.ErrorIs(t, err, gather.ErrMuxClosed)
	assert.ErrorIs(t, err, nats.ErrBadSubscription)
	assert.Equal(t, gather.StopClosed, res.Reason)
	assert.Equal(t, 1, res.Count)

	// A gather on a closed Mux fails at once.
	res, err = gather.Gather(context.Background(), m, "svc", nil, gather.Timeout(time.Hour))
	assert.ErrorIs(t, err, gather.ErrMuxClosed)
	assert.Equal(t, gather.StopClosed, res.Reason)
	require.NoError(t, m.Close(), "Close twice")
}

// Replies that arrive after their gather ended are dropped and counted.
func TestMuxLateReplies(t *testing.T) {
	env := newEnv(t)
	rc := connect(t, env, "responders")
	echoN(3)(t, rc, "svc")
	nc := connect(t, env, "requester")
	m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	defer func() { require.NoError(t, m.Close()) }()
	_, err = gather.Gather(context.Background(), m, "svc", nil, gather.Timeout(time.Hour), gather.MaxReplies(1))
	require.NoError(t, err)
	require.NoError(t, rc.Flush())
	require.NoError(t, nc.Flush())
	// The two late replies are in the client; the Mux's handler runs on its
	// own goroutine, so wait for it to have seen them.
	require.Eventually(t, func() bool { return m.Late() == 2 }, 5*time.Second, time.Millisecond)
}

// Scatter-gather across a cluster and a leaf node: responders on every
// server, the requester on one, after the responders' interest has reached
// the requester's server.
func TestGatherAcrossServers(t *testing.T) {
	t.Run("cluster of 3", func(t *testing.T) {
		servers := testserver.NewCluster(t, 3)
		for i, s := range servers {
			env := cli.NewEnv("multireply", s.ClientURL())
			t.Cleanup(func() { _ = env.Close() })
			echoN(1)(t, connect(t, env, fmt.Sprintf("responder-%d", i+1)), "svc")
		}
		requireInterest(t, servers[0].GlobalAccount().Interest, "svc", 3)
		gatherFromEach(t, servers[0].ClientURL(), 3)
	})
	t.Run("hub and leaf", func(t *testing.T) {
		hub, err := testserver.StartHub()
		require.NoError(t, err)
		t.Cleanup(func() { testserver.Shutdown(hub.Server) })
		leaf, err := testserver.StartLeaf(hub)
		require.NoError(t, err)
		t.Cleanup(func() { testserver.Shutdown(leaf) })
		for i, url := range []string{hub.ClientURL(), leaf.ClientURL()} {
			env := cli.NewEnv("multireply", url)
			t.Cleanup(func() { _ = env.Close() })
			echoN(1)(t, connect(t, env, fmt.Sprintf("responder-%d", i+1)), "svc")
		}
		requireInterest(t, leaf.GlobalAccount().Interest, "svc", 2)
		gatherFromEach(t, leaf.ClientURL(), 2)
	})
}

// requireInterest waits until a server counts n subscriptions on subject,
// local or from its routes and leaf nodes: interest propagates
// asynchronously, and a request sent before it arrives misses responders.
func requireInterest(t *testing.T, interest func(string) int, subject string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return interest(subject) >= n }, 10*time.Second, time.Millisecond,
		"interest in %q never reached %d", subject, n)
}

func gatherFromEach(t *testing.T, url string, n int) {
	t.Helper()
	env := cli.NewEnv("multireply", url)
	t.Cleanup(func() { _ = env.Close() })
	nc := connect(t, env, "requester")
	for _, v := range newVariants(t, nc) {
		t.Run("variant="+v.Name(), func(t *testing.T) {
			res, err := gather.Gather(context.Background(), v, "svc", nil, gather.Timeout(10*time.Second), gather.MaxReplies(n))
			require.NoError(t, err)
			assert.Equal(t, n, res.Count)
			assert.Equal(t, gather.StopMax, res.Reason)
		})
	}
}

// A burst that reaches the Mux's connection while its handler is held up
// (here: the test holds the Mux's lock; in life, a starved goroutine) waits
// in the subscription instead of being dropped there, where no gather and
// no count would see it: every reply is routed and counted. Before, the
// subscription kept nats.go's default limits (64 MiB), so this burst of
// 66 replies of 1,023 KiB lost two or more, counted nowhere.
func TestMuxSubscriptionNeverDrops(t *testing.T) {
	env := newEnv(t)
	const burst, size = 66, 1023 * 1024
	got, send := make(chan struct{}), make(chan struct{})
	rc := connect(t, env, "responders")
	_, err := rc.Subscribe("big", func(m *nats.Msg) {
		close(got)
		<-send
		p := make([]byte, size)
		for range burst {
			if m.Respond(p) != nil {
				return
			}
		}
	})
	require.NoError(t, err)
	require.NoError(t, rc.Flush())
	nc := connect(t, env, "requester")
	m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })

	done := make(chan gather.Result, 1)
	go func() {
		res, _ := gather.Gather(context.Background(), m, "big", nil, gather.Timeout(time.Minute), gather.MaxReplies(burst),
			gather.PendingLimits(burst, burst*size))
		done <- res
	}()
	<-got
	m.Lock()
	close(send)
	require.Eventually(t, func() bool { return m.RC().Stats().InMsgs == burst }, 30*time.Second, time.Millisecond)
	m.Unlock()
	res := <-done
	assert.Equal(t, burst, res.Count+res.Dropped, "count %d, dropped %d, %s", res.Count, res.Dropped, res.Reason)
	assert.Equal(t, burst, m.Received())
	dropped, err := m.Sub().Dropped()
	require.NoError(t, err)
	assert.Zero(t, dropped, "dropped by the Mux's subscription, counted nowhere")
}

// Each Mux is a client connection of its own. Many Muxes on one nc that are
// never closed still release their connections when nc closes (after a
// drain, or without one): the server is back to the connections it had.
func TestManyMuxesReleasedWithNc(t *testing.T) {
	for _, drain := range []bool{false, true} {
		t.Run(fmt.Sprintf("drain=%v", drain), func(t *testing.T) {
			s := testserver.New(t)
			env := cli.NewEnv("multireply", s.ClientURL())
			t.Cleanup(func() { _ = env.Close() })
			echoN(1)(t, connect(t, env, "responders"), "svc")
			before := s.NumClients()
			nc := connect(t, env, "requester")
			const n = 50
			muxes := make([]*gather.Mux, n)
			for i := range muxes {
				m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
				require.NoError(t, err)
				muxes[i] = m
				_, err = gather.Gather(context.Background(), m, "svc", nil, gather.Timeout(time.Minute), gather.MaxReplies(1))
				require.NoError(t, err)
			}
			require.Equal(t, before+1+n, s.NumClients(), "nc and one connection per Mux")
			if drain {
				require.NoError(t, nc.Drain())
				require.Eventually(t, nc.IsClosed, 30*time.Second, time.Millisecond)
			} else {
				nc.Close()
			}
			for _, m := range muxes {
				require.Eventually(t, m.RC().IsClosed, 30*time.Second, time.Millisecond)
			}
			require.Eventually(t, func() bool { return s.NumClients() == before }, 30*time.Second, time.Millisecond)
		})
	}
}

// However a gather ends, it leaves nothing behind, in every variant: the
// client's subscription count, the server's (after a flush: what the
// server still routes to the client) and the goroutine count are back
// where they were before it. Before, an inbox gather with MaxReplies(1)
// that met no responders left its inbox subscribed on the server for good:
// nats.go counted the 503 status against AutoUnsubscribe(1) and dropped
// the subscription locally, without an UNSUB, and the server, which does
// not count its status, kept it (50 gathers: 63 → 113 subscriptions).
func TestEveryEndLeavesNothing(t *testing.T) {
	type gatherFunc func(t *testing.T, v gather.Variant, nc *nats.Conn) (gather.Result, error)
	ranged := func(subject string, opts ...gather.Option) gatherFunc {
		return func(_ *testing.T, v gather.Variant, _ *nats.Conn) (gather.Result, error) {
			return gather.Gather(context.Background(), v, subject, nil, opts...)
		}
	}
	// inLoop ranges a Stream on subject and calls body after the first reply.
	inLoop := func(subject string, body func(cancel context.CancelFunc, nc *nats.Conn), opts ...gather.Option) gatherFunc {
		return func(t *testing.T, v gather.Variant, nc *nats.Conn) (gather.Result, error) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := v.Stream(ctx, subject, nil, append(opts, gather.Timeout(time.Hour))...)
			require.NoError(t, err)
			for range s.Replies() {
				body(cancel, nc)
			}
			return s.Result()
		}
	}
	tests := []struct {
		name       string
		user       string // the requester's: "nopub" may not publish to "secret", "nosub" may not subscribe to inboxes
		run        gatherFunc
		wantReason gather.StopReason
		wantErr    error
		closes     bool   // the requester's connection is closed
		skip       string // a variant that refuses the options (TestNatsextRefusesAdaptiveStall)
	}{
		{name: "answered, max reached", run: ranged("two", gather.Timeout(time.Hour), gather.MaxReplies(1)), wantReason: gather.StopMax},
		{name: "answered, all of max", run: ranged("two", gather.Timeout(time.Hour), gather.MaxReplies(2)), wantReason: gather.StopMax},
		{name: "no responders", run: ranged("nobody", gather.Timeout(time.Hour)), wantReason: gather.StopNoResponders, wantErr: nats.ErrNoResponders},
		{name: "no responders, max 1", run: ranged("nobody", gather.Timeout(time.Hour), gather.MaxReplies(1)), wantReason: gather.StopNoResponders, wantErr: nats.ErrNoResponders},
		{name: "no responders, max 2", run: ranged("nobody", gather.Timeout(time.Hour), gather.MaxReplies(2)), wantReason: gather.StopNoResponders, wantErr: nats.ErrNoResponders},
		{name: "deadline", run: ranged("quiet", gather.Timeout(50*time.Millisecond), gather.MaxReplies(1)), wantReason: gather.StopDeadline},
		{name: "cancelled", run: inLoop("one", func(cancel context.CancelFunc, _ *nats.Conn) { cancel() }),
			wantReason: gather.StopCancelled, wantErr: context.Canceled},
		{name: "stall", run: ranged("one", gather.Timeout(time.Hour), gather.Stall(50*time.Millisecond), gather.MaxReplies(3)), wantReason: gather.StopStalled},
		{name: "sentinel", run: ranged("sentinel", gather.Timeout(time.Hour), gather.Sentinel(nil), gather.MaxReplies(1)), wantReason: gather.StopSentinel},
		{name: "connection closed during the wait", run: inLoop("one", func(_ context.CancelFunc, nc *nats.Conn) { nc.Close() }),
			wantReason: gather.StopClosed, wantErr: nats.ErrConnectionClosed, closes: true},
		{name: "expected, all answered", run: ranged("two", gather.Timeout(time.Hour), gather.Expect("r1", "r2")), wantReason: gather.StopExpected},
		{name: "expected, one missing at the deadline", run: ranged("two", gather.Timeout(50*time.Millisecond), gather.Expect("r1", "r2", "r3")), wantReason: gather.StopDeadline},
		{name: "expected, no responders", run: ranged("nobody", gather.Timeout(time.Hour), gather.Expect("r1")), wantReason: gather.StopNoResponders, wantErr: nats.ErrNoResponders},
		{name: "expected, cancelled", run: inLoop("one", func(cancel context.CancelFunc, _ *nats.Conn) { cancel() }, gather.Expect("r1", "r2")),
			wantReason: gather.StopCancelled, wantErr: context.Canceled},
		{name: "expected, connection closed during the wait", run: inLoop("one", func(_ context.CancelFunc, nc *nats.Conn) { nc.Close() }, gather.Expect("r1", "r2")),
			wantReason: gather.StopClosed, wantErr: nats.ErrConnectionClosed, closes: true},
		{name: "expected, denied publish", user: "nopub", run: ranged("secret", gather.Timeout(time.Hour), gather.Expect("r1")),
			wantReason: gather.StopFailed, wantErr: nats.ErrPermissionViolation},
		{name: "expected, refused up front", run: ranged("two", gather.Expect()), wantReason: gather.StopNone, wantErr: nats.ErrInvalidArg},
		{name: "stop when met", run: ranged("two", gather.Timeout(time.Hour), gather.StopWhen(func(rs []gather.Reply) bool { return len(rs) == 2 })), wantReason: gather.StopCondition},
		{name: "stop when, deadline", run: ranged("quiet", gather.Timeout(50*time.Millisecond), gather.StopWhen(func([]gather.Reply) bool { return true })), wantReason: gather.StopDeadline},
		{name: "adaptive stall", run: ranged("one", gather.Timeout(time.Hour), gather.AdaptiveStall(50*time.Millisecond)), wantReason: gather.StopStalled, skip: "natsext"},
		{name: "refused up front: bad subject", run: ranged("a.*"), wantReason: gather.StopNone, wantErr: nats.ErrBadSubject},
		{name: "refused up front: closed connection", run: func(_ *testing.T, v gather.Variant, nc *nats.Conn) (gather.Result, error) {
			nc.Close()
			return gather.Gather(context.Background(), v, "two", nil, gather.Timeout(time.Hour), gather.MaxReplies(1))
		}, wantReason: gather.StopNone, wantErr: nats.ErrConnectionClosed, closes: true},
		{name: "denied publish", user: "nopub", run: ranged("secret", gather.Timeout(time.Hour), gather.MaxReplies(1)),
			wantReason: gather.StopFailed, wantErr: nats.ErrPermissionViolation},
		{name: "denied inbox", user: "nosub", run: ranged("two", gather.Timeout(time.Hour), gather.MaxReplies(1)),
			wantReason: gather.StopFailed, wantErr: nats.ErrPermissionViolation},
	}
	for _, tc := range tests {
		for _, name := range variants.Names {
			t.Run(tc.name+"/variant="+name, func(t *testing.T) {
				if name == tc.skip {
					t.Skip("refused by this variant")
				}
				s, url := deniedServerAt(t)
				svc := cli.NewEnv("multireply", url("svc"))
				t.Cleanup(func() { _ = svc.Close() })
				rc := connect(t, svc, "responders")
				echoN(2)(t, rc, "two")
				sequence("one")(t, rc, "one")
				silent(t, rc, "one")
				silent(t, rc, "quiet")
				sequence("", "late")(t, rc, "sentinel")
				user := tc.user
				if user == "" {
					user = "nopub"
				}
				env := cli.NewEnv("multireply", url(user))
				t.Cleanup(func() { _ = env.Close() })
				nc := connect(t, env, "requester")
				v, release, err := variants.New(name, nc)
				if user == "nosub" && name == "shared" {
					// The Mux subscribes its inbox when it is made: refused then.
					require.ErrorIs(t, err, nats.ErrPermissionViolation)
					return
				}
				require.NoError(t, err)
				defer func() { _ = release() }()

				// Where things stand: a first gather has made whatever a
				// connection makes once (nats.go's and the watch's state).
				_, err = gather.Gather(context.Background(), v, "two", nil, gather.Timeout(time.Hour), gather.MaxReplies(2))
				if user != "nosub" {
					require.NoError(t, err)
				}
				rx := receiver(v, nc)
				require.NoError(t, rx.Flush())
				before, err := testserver.FootprintOf(s, nc) // after nc's flush
				require.NoError(t, err)
				serverSubs := before.Server
				if tc.closes {
					// What nc and the Mux's connection hold goes with them.
					serverSubs -= before.Client
					if rx != nc {
						serverSubs -= rx.NumSubscriptions()
					}
				}

				const rounds = 3 // a leak grows with each
				for i := range rounds {
					if tc.closes && i > 0 {
						break
					}
					res, err := tc.run(t, v, nc)
					assert.Equal(t, tc.wantReason, res.Reason)
					if tc.wantErr != nil {
						assert.ErrorIs(t, err, tc.wantErr)
					} else {
						assert.NoError(t, err)
					}
				}

				if !nc.IsClosed() {
					assert.Equal(t, before.Client, nc.NumSubscriptions(), "the client's subscriptions")
					require.NoError(t, rx.Flush())
				}
				require.NoError(t, rc.Flush())
				// A closed connection's subscriptions leave the server when it
				// has read the close; the others are known after the flushes
				// (FootprintOf flushes nc while it is open).
				after, err := testserver.SettleFootprint(s, nc, func(f testserver.Footprint) bool {
					return f.Server == serverSubs && f.Goroutines <= before.Goroutines
				})
				require.NoError(t, err)
				assert.Equal(t, serverSubs, after.Server, "the server's subscriptions")
				assert.LessOrEqual(t, after.Goroutines, before.Goroutines, "goroutines")
			})
		}
	}
}

// A long-lived Mux holds per-gather state only while the gather runs: after
// thousands of gathers to as many distinct subjects (answered, no
// responders, deadline), run 8 at a time, its map of running gathers never
// held more than the gathers in flight and is empty at the end, and the
// client, the server and the goroutines are back where they started.
func TestMuxStateBoundedByInFlight(t *testing.T) {
	const workers, perWorker = 8, 400 // 3,200 subjects
	s := testserver.New(t)
	env := cli.NewEnv("multireply", s.ClientURL())
	t.Cleanup(func() { _ = env.Close() })
	rc := connect(t, env, "responders")
	_, err := rc.Subscribe("bounded.answered.>", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
	require.NoError(t, err)
	require.NoError(t, rc.Flush())
	nc := connect(t, env, "requester")
	m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	defer func() { require.NoError(t, m.Close()) }()
	inFlight := func() int {
		return m.InFlight()
	}
	before, err := testserver.FootprintOf(s, m.RC())
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			peak := 0
			for i := range perWorker {
				subject, opts, want := fmt.Sprintf("bounded.none.%d.%d", w, i), []gather.Option{gather.Timeout(10 * time.Second)}, gather.StopNoResponders
				switch i % 10 {
				case 0, 1, 2, 3:
					subject, opts, want = fmt.Sprintf("bounded.answered.%d.%d", w, i), append(opts, gather.MaxReplies(1)), gather.StopMax
				case 4:
					subject, opts, want = fmt.Sprintf("bounded.answered.%d.%d", w, i), []gather.Option{gather.Timeout(5 * time.Millisecond), gather.MaxReplies(2)}, gather.StopDeadline
				}
				res, _ := gather.Gather(context.Background(), m, subject, nil, opts...)
				if res.Reason != want {
					errs <- fmt.Errorf("%s: stopped %v, want %v", subject, res.Reason, want)
					return
				}
				peak = max(peak, inFlight())
			}
			if peak > workers {
				errs <- fmt.Errorf("%d gathers registered with %d in flight", peak, workers)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	assert.Zero(t, inFlight(), "running gathers held after all ended")
	assert.Equal(t, before.Client, m.RC().NumSubscriptions(), "the Mux's subscriptions")
	after, err := testserver.SettleFootprint(s, m.RC(), func(f testserver.Footprint) bool { return f.Goroutines <= before.Goroutines })
	require.NoError(t, err)
	assert.Equal(t, before.Server, after.Server, "the server's subscriptions")
	assert.LessOrEqual(t, after.Goroutines, before.Goroutines, "goroutines")
}

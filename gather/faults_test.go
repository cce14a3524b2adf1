package gather_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/gather"
	"reqreply/internal/cli"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
)

// Faults a gather survives, on real embedded servers.

// restart shuts s down and starts a new server on the same port, as a
// restarted nats-server would come back.
func restart(t *testing.T, s *server.Server) *server.Server {
	t.Helper()
	port := s.Addr().(*net.TCPAddr).Port
	testserver.Shutdown(s)
	s2, err := testserver.Start(func(o *server.Options) { o.Port = port })
	require.NoError(t, err)
	t.Cleanup(func() { testserver.Shutdown(s2) })
	return s2
}

// fastReconnect makes a connection retry every 10 ms.
var fastReconnect = []nats.Option{nats.ReconnectWait(10 * time.Millisecond), nats.ReconnectJitter(0, 0), nats.MaxReconnects(-1)}

// requireReconnected waits until each connection is connected again and the
// server has its subscriptions (a flush round trip after the reconnect).
func requireReconnected(t *testing.T, conns ...*nats.Conn) {
	t.Helper()
	for _, nc := range conns {
		require.Eventually(t, nc.IsConnected, 30*time.Second, time.Millisecond)
		require.NoError(t, nc.Flush())
	}
}

// The server restarts in the middle of a gather: nats.go reconnects and
// sends the subscriptions again, so a reply sent after the restart still
// reaches the gather, which ends on its own stop condition (here: both
// replies, StopMax). The gather never hangs past its deadline.
func TestServerRestartMidGather(t *testing.T) {
	for _, name := range variants.Names {
		t.Run("variant="+name, func(t *testing.T) {
			s := testserver.New(t)
			env := cli.NewEnv("multireply", s.ClientURL())
			t.Cleanup(func() { _ = env.Close() })
			rc, err := env.Connect("responders", fastReconnect...)
			require.NoError(t, err)
			release := make(chan struct{})
			twoStep(t, rc, "svc", release)
			nc, err := env.Connect("requester", fastReconnect...)
			require.NoError(t, err)
			v, free, err := variants.New(name, nc)
			require.NoError(t, err)
			defer func() { _ = free() }()

			s2 := s
			st, err := v.Stream(context.Background(), "svc", nil, gather.Timeout(time.Hour), gather.MaxReplies(2))
			require.NoError(t, err)
			var got []string
			for r := range st.Replies() {
				got = append(got, string(r.Msg.Data))
				if len(got) == 1 {
					s2 = restart(t, s)
					requireReconnected(t, rc, nc, receiver(v, nc))
					close(release)
				}
			}
			res, err := st.Result()
			require.NoError(t, err)
			assert.Equal(t, gather.StopMax, res.Reason)
			assert.Equal(t, []string{"one", "two"}, got)
			_ = s2
		})
	}
}

// A gather started while the server is away: the shared and natsext
// variants' request goes into nats.go's reconnect buffer (8 MiB by default,
// nats.ReconnectBufSize) and out after the reconnect, so the gather
// succeeds if its deadline allows; the inbox variant's flush waits for the
// connection too. A gather whose deadline passes while disconnected ends
// then (StopDeadline), never later.
func TestGatherWhileDisconnected(t *testing.T) {
	for _, name := range variants.Names {
		t.Run("variant="+name, func(t *testing.T) {
			s := testserver.New(t)
			env := cli.NewEnv("multireply", s.ClientURL())
			t.Cleanup(func() { _ = env.Close() })
			rc, err := env.Connect("responders", fastReconnect...)
			require.NoError(t, err)
			echoN(1)(t, rc, "svc")
			// The requester retries only when told (ForceReconnect below), so
			// that it is back after the responders.
			nc, err := env.Connect("requester", nats.ReconnectWait(time.Hour), nats.ReconnectJitter(0, 0), nats.MaxReconnects(-1))
			require.NoError(t, err)
			v, free, err := variants.New(name, nc)
			require.NoError(t, err)
			defer func() { _ = free() }()

			// The server goes away.
			port := s.Addr().(*net.TCPAddr).Port
			testserver.Shutdown(s)
			require.Eventually(t, func() bool { return !nc.IsConnected() && !receiver(v, nc).IsConnected() }, 30*time.Second, time.Millisecond)

			// A short deadline while disconnected: it ends by the deadline.
			res, err := gather.Gather(context.Background(), v, "svc", nil, gather.Timeout(20*time.Millisecond))
			require.NoError(t, err)
			assert.Equal(t, gather.StopDeadline, res.Reason)
			assert.Zero(t, res.Count)

			// The reconnect buffer: a request made while disconnected waits
			// in the client and goes out once the connection is back.
			before := outMsgs(v, nc)
			done := make(chan struct{})
			var gres gather.Result
			var gerr error
			go func() {
				defer close(done)
				gres, gerr = gather.Gather(context.Background(), v, "svc", nil, gather.Timeout(time.Minute), gather.MaxReplies(1))
			}()
			if name != "inbox" {
				require.Eventually(t, func() bool { return outMsgs(v, nc) > before }, 30*time.Second, time.Millisecond,
					"the request is in the reconnect buffer")
			}
			s2, err := testserver.Start(func(o *server.Options) { o.Port = port })
			require.NoError(t, err)
			t.Cleanup(func() { testserver.Shutdown(s2) })
			requireReconnected(t, rc)
			require.NoError(t, nc.ForceReconnect())
			require.NoError(t, receiver(v, nc).ForceReconnect())
			<-done
			if name == "inbox" {
				// Its flush was sent before the reconnect: nats.go fails it
				// or answers it after; either way the gather ends.
				assert.True(t, gerr != nil || gres.Count == 1, "%v", gerr)
				return
			}
			require.NoError(t, gerr)
			assert.Equal(t, 1, gres.Count, "the request went out after the reconnect")
		})
	}
}

// A responder that replies twice to one request: each reply is a message,
// counted once. MaxReplies(1) hands out one; the other is unread or late
// for the shared Mux (Late), or discarded by nats.go once the inbox
// variant has unsubscribed; without MaxReplies both are replies.
func TestResponderRepliesTwice(t *testing.T) {
	env := newEnv(t)
	rc := connect(t, env, "responders")
	sequence("dup", "dup")(t, rc, "svc")
	nc := connect(t, env, "requester")
	for _, v := range newVariants(t, nc) {
		t.Run("variant="+v.Name(), func(t *testing.T) {
			res, err := gather.Gather(context.Background(), v, "svc", nil, gather.Timeout(time.Hour), gather.MaxReplies(1))
			require.NoError(t, err)
			assert.Equal(t, 1, res.Count)
			if m, ok := v.(*gather.Mux); ok {
				require.NoError(t, rc.Flush())
				require.NoError(t, m.RC().Flush())
				require.Eventually(t, func() bool { return m.Received() == 2 }, 10*time.Second, time.Millisecond)
				assert.Equal(t, 1, m.Late(), "the duplicate is late")
			}

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := v.Stream(ctx, "svc", nil, gather.Timeout(time.Hour))
			require.NoError(t, err)
			n := 0
			for range s.Replies() {
				if n++; n == 2 {
					cancel()
				}
			}
			res, err = s.Result()
			assert.True(t, errors.Is(err, context.Canceled))
			assert.Equal(t, 2, res.Count, "both copies are replies")
		})
	}
}

// The Mux's own connection does not call nc's connection-event handlers:
// after a server restart nc's disconnect and reconnect handlers run for nc
// alone, once each, and never receive the Mux's connection (before, every
// event was reported twice: the CLI printed each "disconnected" line twice).
func TestMuxConnectionEventsAreNcsAlone(t *testing.T) {
	s := testserver.New(t)
	env := cli.NewEnv("multireply", s.ClientURL())
	t.Cleanup(func() { _ = env.Close() })
	var (
		mu   sync.Mutex
		seen []*nats.Conn
	)
	record := func(c *nats.Conn) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, c)
	}
	reconnected := make(chan struct{}, 1)
	nc, err := env.Connect("requester", append(fastReconnect,
		nats.DisconnectErrHandler(func(c *nats.Conn, _ error) { record(c) }),
		nats.ReconnectHandler(func(c *nats.Conn) {
			record(c)
			select {
			case reconnected <- struct{}{}:
			default:
			}
		}),
		nats.DiscoveredServersHandler(record),
		nats.ClosedHandler(record),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	)...)
	require.NoError(t, err)
	m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })

	// What the Mux's connection was given: nc's async error handler only.
	// Its closed handler may be internal/cli's own (its request watch
	// follows a close): that nc's is not called for it is checked below,
	// when m.Close closes it.
	o := m.RC().Opts
	for name, set := range map[string]bool{
		"connected":    o.ConnectedCB != nil,
		"disconnected": o.DisconnectedCB != nil || o.DisconnectedErrCB != nil,
		"reconnected":  o.ReconnectedCB != nil, "reconnect error": o.ReconnectErrCB != nil,
		"discovered servers": o.DiscoveredServersCB != nil, "lame duck": o.LameDuckModeHandler != nil,
	} {
		assert.False(t, set, "the Mux's connection calls nc's %s handler", name)
	}
	assert.NotNil(t, o.AsyncErrorCB, "the Mux's connection reports its async errors to nc's handler")

	restart(t, s)
	requireReconnected(t, nc, m.RC())
	<-reconnected
	// The Mux's connection had its reconnect queued before it reported
	// itself connected; closing it runs what was queued before it stops.
	require.NoError(t, m.Close())
	require.NoError(t, nc.Flush())
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 2, "one disconnect and one reconnect, of nc, and no close")
	for _, c := range seen {
		assert.Same(t, nc, c, "an event handler of nc got another connection")
	}
}

// When the Mux's own connection closes for good while nc stays connected
// (its reconnect attempts used up, say), the Mux says so: a gather ends at
// once with StopClosed and nats.ErrConnectionClosed, and so does every
// later one; nc's own requests still work.
func TestMuxConnectionClosedAlone(t *testing.T) {
	env := newEnv(t)
	echoN(2)(t, connect(t, env, "responders"), "svc")
	nc := connect(t, env, "requester")
	m, err := gather.NewMux(nc, gather.WithDenials(variants.Hook{}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	res, err := gather.Gather(context.Background(), m, "svc", nil, gather.Timeout(time.Minute), gather.MaxReplies(2))
	require.NoError(t, err)
	require.Equal(t, 2, res.Count)

	m.RC().Close()
	for range 2 {
		res, err = gather.Gather(context.Background(), m, "svc", nil, gather.Timeout(time.Minute), gather.MaxReplies(2))
		require.ErrorIs(t, err, nats.ErrConnectionClosed)
		assert.Equal(t, gather.StopClosed, res.Reason)
		assert.Zero(t, res.Count)
	}
	_, err = nc.Request("svc", nil, time.Minute)
	require.NoError(t, err, "nc is not affected")
	require.NoError(t, m.Close())
}

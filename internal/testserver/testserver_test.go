package testserver_test

import (
	"bytes"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"reqreply/internal/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// connect opens a plain nats.go connection to url, closed when the test
// ends. Asynchronous errors, which nats.go prints by default, are left to
// the test to read with LastError.
func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	quiet := nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})
	nc, err := nats.Connect(url, append([]nats.Option{quiet}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// echo subscribes nc to subject and answers every request with its subject,
// flushed, so the server has the subscription when echo returns.
func echo(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	_, err := nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond([]byte(m.Subject)) })
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
}

func TestStart(t *testing.T) {
	tests := []struct {
		name    string
		opts    []testserver.Option
		check   func(t *testing.T, s *server.Server)
		wantErr string // the server's own error for bad options
	}{
		{name: "defaults", check: func(t *testing.T, s *server.Server) {
			assert.True(t, strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:"), s.ClientURL())
			assert.NotEqual(t, "nats://127.0.0.1:4222", s.ClientURL(), "a random port, not the default one")
		}},
		{name: "named", opts: []testserver.Option{testserver.WithServerName("alpha")}, check: func(t *testing.T, s *server.Server) {
			assert.Equal(t, "alpha", s.Name())
		}},
		{name: "bad options", opts: []testserver.Option{testserver.WithServerName("has a space")}, wantErr: "server name cannot contain spaces"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := testserver.Start(tc.opts...)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.NotErrorIs(t, err, testserver.ErrNotReady)
				return
			}
			require.NoError(t, err)
			defer testserver.Shutdown(s)
			tc.check(t, s)
			nc := connect(t, s.ClientURL())
			echo(t, nc, "ping")
			msg, err := nc.Request("ping", nil, time.Second)
			require.NoError(t, err)
			assert.Equal(t, "ping", string(msg.Data))
		})
	}
}

func TestShutdown(t *testing.T) {
	s, err := testserver.Start()
	require.NoError(t, err)
	url := s.ClientURL()
	testserver.Shutdown(s, nil) // nil servers are skipped
	assert.False(t, s.Running())
	_, err = nats.Connect(url)
	assert.ErrorIs(t, err, nats.ErrNoServers)
	testserver.Shutdown(s) // a second time is harmless
}

func TestNewShutsDownWhenTheTestEnds(t *testing.T) {
	var s *server.Server
	t.Run("inner", func(t *testing.T) {
		s = testserver.New(t)
		assert.True(t, s.Running())
	})
	assert.False(t, s.Running(), "still running after its test ended")
}

func TestStartCluster(t *testing.T) {
	nodes, err := testserver.StartCluster(3)
	require.NoError(t, err)
	defer testserver.Shutdown(nodes...)

	// Ready means every node counts every other as a remote server.
	for _, s := range nodes {
		assert.Equal(t, 2, s.NumRemotes(), s.Name())
	}
	assert.Equal(t, []string{"node-1", "node-2", "node-3"}, []string{nodes[0].Name(), nodes[1].Name(), nodes[2].Name()})

	// A responder on node 1 answers a requester on node 3, once node 3 has
	// learnt of its interest.
	echo(t, connect(t, nodes[0].ClientURL()), "svc.>")
	require.NoError(t, testserver.WaitForInterest(nodes[2], "svc.a"))
	msg, err := connect(t, nodes[2].ClientURL()).Request("svc.a", nil, time.Second)
	require.NoError(t, err)
	assert.Equal(t, "svc.a", string(msg.Data))
}

func TestStartClusterTooSmall(t *testing.T) {
	for _, n := range []int{-1, 0, 1} {
		nodes, err := testserver.StartCluster(n)
		assert.Error(t, err, "n=%d", n)
		assert.Nil(t, nodes)
	}
}

func TestNewCluster(t *testing.T) {
	var nodes []*server.Server
	t.Run("inner", func(t *testing.T) {
		nodes = testserver.NewCluster(t, 2, testserver.WithMaxPayload(2048))
		require.Len(t, nodes, 2)
		assert.EqualValues(t, 2048, connect(t, nodes[1].ClientURL()).MaxPayload(), "options apply to every node")
	})
	for _, s := range nodes {
		assert.False(t, s.Running(), "%s still running after its test ended", s.Name())
	}
}

func TestHubAndLeaf(t *testing.T) {
	tests := []struct {
		name      string
		responder func(hub, leaf *server.Server) *server.Server
	}{
		{name: "hub answers leaf", responder: func(hub, _ *server.Server) *server.Server { return hub }},
		{name: "leaf answers hub", responder: func(_, leaf *server.Server) *server.Server { return leaf }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hub, err := testserver.StartHub()
			require.NoError(t, err)
			defer testserver.Shutdown(hub.Server)
			assert.Equal(t, "nats-leaf", hub.LeafURL.Scheme)
			leaf, err := testserver.StartLeaf(hub)
			require.NoError(t, err)
			defer testserver.Shutdown(leaf)
			assert.Equal(t, 1, hub.NumLeafNodes())
			assert.Equal(t, 1, leaf.NumLeafNodes())

			responder := tc.responder(hub.Server, leaf)
			requester := leaf
			if responder == leaf {
				requester = hub.Server
			}
			echo(t, connect(t, responder.ClientURL()), "svc.>")
			require.NoError(t, testserver.WaitForInterest(requester, "svc.a"))
			msg, err := connect(t, requester.ClientURL()).Request("svc.a", nil, time.Second)
			require.NoError(t, err)
			assert.Equal(t, "svc.a", string(msg.Data))
		})
	}
}

func TestStartLeafWithoutHub(t *testing.T) {
	for _, hub := range []*testserver.Hub{nil, {}} {
		leaf, err := testserver.StartLeaf(hub)
		assert.Error(t, err)
		assert.Nil(t, leaf)
	}
}

func TestWithMaxPayload(t *testing.T) {
	s := testserver.New(t, testserver.WithMaxPayload(1024))
	nc := connect(t, s.ClientURL())
	// nats.go learns the limit from the server's INFO and checks it locally.
	assert.EqualValues(t, 1024, nc.MaxPayload())
	tests := []struct {
		size    int
		wantErr error
	}{
		{size: 0},
		{size: 1024},
		{size: 1025, wantErr: nats.ErrMaxPayload},
		{size: 1 << 20, wantErr: nats.ErrMaxPayload},
	}
	for _, tc := range tests {
		err := nc.Publish("big", bytes.Repeat([]byte("x"), tc.size))
		if tc.wantErr == nil {
			assert.NoError(t, err, "%d bytes", tc.size)
		} else {
			assert.ErrorIs(t, err, tc.wantErr, "%d bytes", tc.size)
		}
	}
	require.NoError(t, nc.Flush())
	assert.NoError(t, nc.LastError())
}

func TestWithUsers(t *testing.T) {
	users := []*server.User{
		{Username: "alice", Password: "a-secret", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Deny: []string{"news.secret.>"}},
			Subscribe: &server.SubjectPermission{Deny: []string{"private.>"}},
		}},
		{Username: "bob", Password: "b-secret"}, // nil permissions: everything
	}
	s := testserver.New(t, testserver.WithUsers(users...))
	url := s.ClientURL()

	t.Run("credentials are required", func(t *testing.T) {
		for _, opts := range [][]nats.Option{
			nil,
			{nats.UserInfo("alice", "wrong")},
			{nats.UserInfo("carol", "c-secret")},
		} {
			_, err := nats.Connect(url, opts...)
			assert.ErrorIs(t, err, nats.ErrAuthorization)
		}
	})

	t.Run("publish deny", func(t *testing.T) {
		bob := connect(t, url, nats.UserInfo("bob", "b-secret"))
		sub, err := bob.SubscribeSync("news.>")
		require.NoError(t, err)
		require.NoError(t, bob.Flush())
		alice := connect(t, url, nats.UserInfo("alice", "a-secret"))

		// The denied publish comes first, the allowed one after it on the
		// same connection: if the first got through, bob would see it first.
		require.NoError(t, alice.Publish("news.secret.plans", []byte("no")))
		require.NoError(t, alice.Publish("news.public", []byte("yes")))
		// The server's -ERR for the denied publish comes before its PONG.
		require.NoError(t, alice.Flush())
		assert.ErrorIs(t, alice.LastError(), nats.ErrPermissionViolation)
		msg, err := sub.NextMsg(time.Second)
		require.NoError(t, err)
		assert.Equal(t, "news.public", msg.Subject)

		// Bob may publish there.
		require.NoError(t, bob.Publish("news.secret.plans", []byte("ok")))
		msg, err = sub.NextMsg(time.Second)
		require.NoError(t, err)
		assert.Equal(t, "news.secret.plans", msg.Subject)
	})

	t.Run("subscribe deny", func(t *testing.T) {
		alice := connect(t, url, nats.UserInfo("alice", "a-secret"))
		_, err := alice.SubscribeSync("private.diary")
		require.NoError(t, err, "the client cannot know; the server refuses")
		require.NoError(t, alice.Flush())
		assert.ErrorIs(t, alice.LastError(), nats.ErrPermissionViolation)
	})
}

func TestWaitForInterest(t *testing.T) {
	s := testserver.New(t)
	nc := connect(t, s.ClientURL())
	_, err := nc.SubscribeSync("orders.*")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	assert.NoError(t, testserver.WaitForInterest(s, "orders.new"))
}

func TestStartSupercluster(t *testing.T) {
	sc, err := testserver.StartSupercluster([]string{"east", "west"}, 2)
	require.NoError(t, err)
	defer sc.Shutdown()

	// Ready means routes within each cluster and gateways both ways.
	require.Len(t, sc.Clusters, 2)
	var names []string
	for _, s := range sc.Servers() {
		names = append(names, s.Name())
		assert.Equal(t, 1, s.NumRemotes(), s.Name())
		assert.Equal(t, 1, s.NumOutboundGateways(), s.Name())
	}
	assert.Equal(t, []string{"east-1", "east-2", "west-1", "west-2"}, names)

	east, west := sc.Clusters[0], sc.Clusters[1]
	requester := connect(t, east[1].ClientURL())

	// A plain responder in west answers a requester in east across the
	// gateway, once its interest has crossed it: until then east may answer
	// "no responders", so the requester probes.
	echo(t, connect(t, west[0].ClientURL()), "svc.>")
	askUntil(t, requester, "svc.a", "svc.a")

	// Queue members in both clusters: a request made in east is answered in
	// east while an east member exists (the gateway's geo-affinity).
	member := func(nc *nats.Conn, name string) *nats.Subscription {
		sub, err := nc.QueueSubscribe("work", "q", func(m *nats.Msg) { _ = m.Respond([]byte(name)) })
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
		return sub
	}
	// The east member's interest must have reached the requester's node
	// before the west member exists: a queue interest that crossed the
	// gateway counts as interest too, so waiting after both could end on
	// west's alone, and east-2 would then route to west.
	eastSub := member(connect(t, east[0].ClientURL()), "east")
	require.NoError(t, testserver.WaitForInterest(east[1], "work"))
	member(connect(t, west[1].ClientURL()), "west")
	for range 20 {
		msg, err := requester.Request("work", nil, 2*time.Second)
		require.NoError(t, err)
		require.Equal(t, "east", string(msg.Data))
	}

	// Once east has no member, west's answers come across the gateway. The
	// east nodes learn that the local member left asynchronously, so the
	// requester asks until west answers, bounded by ReadyTimeout.
	require.NoError(t, eastSub.Unsubscribe())
	askUntil(t, requester, "work", "west")
}

// askUntil sends requests on subject from nc until one is answered with
// want, each bounded by a short timeout and all by ReadyTimeout: how a
// client learns that interest has crossed a route or a gateway, since it
// cannot see the servers' state.
func askUntil(t *testing.T, nc *nats.Conn, subject, want string) {
	t.Helper()
	deadline := time.Now().Add(testserver.ReadyTimeout)
	for {
		msg, err := nc.Request(subject, nil, 250*time.Millisecond)
		if err == nil && string(msg.Data) == want {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("no answer %q on %q within %s: last %v", want, subject, testserver.ReadyTimeout, err)
		}
	}
}

func TestStartSuperclusterBadArgs(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		n     int
	}{
		{name: "one cluster", names: []string{"east"}, n: 2},
		{name: "same name twice", names: []string{"east", "east"}, n: 2},
		{name: "one node each", names: []string{"east", "west"}, n: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := testserver.StartSupercluster(tc.names, tc.n)
			require.Error(t, err)
			assert.Nil(t, sc)
		})
	}
}

func TestWithoutHeaders(t *testing.T) {
	s := testserver.New(t, testserver.WithoutHeaders())
	nc := connect(t, s.ClientURL())
	assert.False(t, nc.HeadersSupported())
	err := nc.PublishMsg(&nats.Msg{Subject: "h", Header: nats.Header{"K": []string{"v"}}})
	assert.ErrorIs(t, err, nats.ErrHeadersNotSupported)
}

// TestWithPort restarts a server on the port of the one before: the same
// client URL reaches it.
func TestWithPort(t *testing.T) {
	first := testserver.New(t)
	url := first.ClientURL()
	port := first.Addr().(*net.TCPAddr).Port
	testserver.Shutdown(first)
	second := testserver.New(t, testserver.WithPort(port))
	assert.Equal(t, url, second.ClientURL())
	nc := connect(t, url)
	require.NoError(t, nc.Flush())
}

// TestSettle: Settle polls on the caller's goroutine, so it can wait for
// the goroutine count itself to come back.
func TestSettle(t *testing.T) {
	n := runtime.NumGoroutine()
	stop := make(chan struct{})
	go func() { <-stop }()
	close(stop)
	assert.True(t, testserver.Settle(func() bool { return runtime.NumGoroutine() <= n }))
	assert.True(t, testserver.Settle(func() bool { return true }))
}

// TestFootprint: FootprintOf counts nc's subscriptions on both sides after
// a flush, and SettleFootprint waits until a closed connection's have left
// the server.
func TestFootprint(t *testing.T) {
	s := testserver.New(t)
	nc := connect(t, s.ClientURL())
	before, err := testserver.FootprintOf(s, nc)
	require.NoError(t, err)
	_, err = nc.SubscribeSync("footprint")
	require.NoError(t, err)
	during, err := testserver.FootprintOf(s, nc)
	require.NoError(t, err)
	assert.Equal(t, before.Client+1, during.Client)
	assert.Equal(t, before.Server+1, during.Server)
	nc.Close()
	after, err := testserver.SettleFootprint(s, nc, func(f testserver.Footprint) bool { return f.Server == before.Server })
	require.NoError(t, err)
	assert.Equal(t, testserver.Footprint{Client: 0, Server: before.Server, Goroutines: after.Goroutines}, after)
}

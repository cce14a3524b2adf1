package testserver_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"reqreply/internal/testserver"
)

// What a request costs as NATS grows beyond one server: one request and its
// reply, the responder on the same node, across a route (cluster), across a
// gateway (supercluster) and from a leaf node to a hub; and a scatter-gather
// of 10 responders spread over a cluster of 3. Timing lives here, never in
// a test's asserts.
//
//	go test -run '^$' -bench 'Topology' -benchtime 2000x -count 3 ./internal/testserver

// benchConn opens a plain connection to url, closed when b ends.
func benchConn(b *testing.B, url string) *nats.Conn {
	b.Helper()
	nc, err := nats.Connect(url, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	require.NoError(b, err)
	b.Cleanup(nc.Close)
	return nc
}

// benchEcho makes nc answer every request on subject with an empty reply.
func benchEcho(b *testing.B, nc *nats.Conn, subject string) {
	b.Helper()
	_, err := nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(nil) })
	require.NoError(b, err)
	require.NoError(b, nc.Flush())
}

// warm sends requests until one is answered, within testserver's bound:
// the responder's interest is then known on the requester's node, whatever
// carried it there (across a gateway it is not in the account's
// subscriptions).
func warm(b *testing.B, nc *nats.Conn, subject string) {
	b.Helper()
	deadline := time.Now().Add(testserver.ReadyTimeout)
	for {
		_, err := nc.Request(subject, nil, 100*time.Millisecond)
		if err == nil {
			return
		}
		require.True(b, time.Now().Before(deadline), "no reply on %q: %v", subject, err)
	}
}

// BenchmarkTopologyRequest is one request and its reply per op; ns/op is
// the round trip, in each topology.
func BenchmarkTopologyRequest(b *testing.B) {
	const subject = "bench.echo"
	// Each case returns the requester's and the responder's URLs.
	cases := []struct {
		name  string
		start func(b *testing.B) (requester, responder string)
	}{
		{"same node", func(b *testing.B) (string, string) {
			s := testserver.New(b)
			return s.ClientURL(), s.ClientURL()
		}},
		{"across a route", func(b *testing.B) (string, string) {
			c := testserver.NewCluster(b, 2)
			return c[1].ClientURL(), c[0].ClientURL()
		}},
		{"across a gateway", func(b *testing.B) (string, string) {
			sc := testserver.NewSupercluster(b, []string{"east", "west"}, 2)
			return sc.Clusters[0][0].ClientURL(), sc.Clusters[1][0].ClientURL()
		}},
		{"leaf to hub", func(b *testing.B) (string, string) {
			hub, err := testserver.StartHub()
			require.NoError(b, err)
			b.Cleanup(func() { testserver.Shutdown(hub.Server) })
			leaf, err := testserver.StartLeaf(hub)
			require.NoError(b, err)
			b.Cleanup(func() { testserver.Shutdown(leaf) })
			return leaf.ClientURL(), hub.ClientURL()
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			reqURL, respURL := tc.start(b)
			benchEcho(b, benchConn(b, respURL), subject)
			nc := benchConn(b, reqURL)
			warm(b, nc, subject)
			for b.Loop() {
				if _, err := nc.Request(subject, nil, time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTopologyGather10 is one scatter-gather per op on a cluster of 3:
// a request published to 10 responders spread round-robin over the nodes,
// the requester on node-2, and all 10 replies collected on one inbox.
func BenchmarkTopologyGather10(b *testing.B) {
	const subject, responders = "bench.gather", 10
	c := testserver.NewCluster(b, 3)
	for i := range responders {
		benchEcho(b, benchConn(b, c[i%len(c)].ClientURL()), subject)
	}
	nc := benchConn(b, c[1].ClientURL())
	inbox := nc.NewInbox()
	replies := make(chan *nats.Msg, 4*responders)
	sub, err := nc.ChanSubscribe(inbox+".*", replies)
	require.NoError(b, err)
	b.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(b, nc.Flush())
	// gather sends request n and reports whether all 10 replies to it came
	// within timeout; replies to earlier requests are skipped.
	n := 0
	gather := func(timeout time.Duration) bool {
		n++
		reply := inbox + "." + strconv.Itoa(n)
		if err := nc.PublishRequest(subject, reply, nil); err != nil {
			b.Fatal(err)
		}
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		for got := 0; got < responders; {
			select {
			case m := <-replies:
				if m.Subject == reply {
					got++
				}
			case <-timer.C:
				return false
			}
		}
		return true
	}
	// Every responder's interest must have reached node-2 first.
	deadline := time.Now().Add(testserver.ReadyTimeout)
	for !gather(100 * time.Millisecond) {
		require.True(b, time.Now().Before(deadline), "never got %d replies", responders)
	}
	for b.Loop() {
		if !gather(time.Second) {
			b.Fatalf("gather %d: fewer than %d replies within 1s", n, responders)
		}
	}
}

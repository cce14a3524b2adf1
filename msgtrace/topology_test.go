// The hops a trace reports, checked against the topology they ran on: a
// cluster (a route crossing), a supercluster (a gateway crossing) and a
// leaf node (a leaf crossing, and a queue request kept local).

package msgtrace_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/gather"
	"reqreply/internal/testserver"
	"reqreply/msgtrace"
)

// connectTo connects a client named name to s, closed when the test ends.
func connectTo(t *testing.T, s *server.Server, name string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.Name(name))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// respond subscribes a responder named name on s to subject (in queue
// group queue, if not ""), answering with its name, and flushes.
func respond(t *testing.T, s *server.Server, name, subject, queue string) {
	t.Helper()
	nc := connectTo(t, s, name)
	_, err := nc.QueueSubscribe(subject, queue, func(m *nats.Msg) { _ = m.Respond([]byte(name)) })
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
}

// tracedRequest sends one traced request from nc and returns the reply's
// payload and the complete tree.
func tracedRequest(t *testing.T, nc *nats.Conn, subject string) (string, *msgtrace.Tree) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr, err := msgtrace.Start(nc)
	require.NoError(t, err)
	reply, err := nc.RequestMsgWithContext(ctx, tr.Msg(nats.NewMsg(subject)))
	require.NoError(t, err)
	tree, err := tr.Collect(ctx, 2*time.Second)
	require.NoError(t, err)
	require.True(t, tree.Complete(), "missing hops %q:\n%s", tree.Missing(), tree)
	return string(reply.Data), tree
}

// paths lists, for each egress to a client in tree, the servers the message
// went through and the kind of each crossing, then the client's name:
// "node-2 route node-1 client responder".
func paths(tree *msgtrace.Tree) []string {
	var out []string
	var walk func(r *msgtrace.Report, path string)
	walk = func(r *msgtrace.Report, path string) {
		path += r.Server.Name
		for _, e := range r.Egresses() {
			if next := tree.Next(e); next != nil {
				walk(next, path+" "+e.Kind.String()+" ")
				continue
			}
			out = append(out, path+" "+e.Kind.String()+" "+e.Name)
		}
	}
	walk(tree.Root(), "")
	return out
}

// On a cluster of 3, a request from node-2 to a responder on node-1 enters
// node-2 from the requester's connection, crosses the route to node-1 (hop
// 1), and leaves node-1 to the responder's connection; node-3, with no
// interest, sees nothing.
func TestCluster(t *testing.T) {
	nodes := testserver.NewCluster(t, 3)
	respond(t, nodes[0], "responder", "greet.*", "")
	require.NoError(t, testserver.WaitForInterest(nodes[1], "greet.joe"))
	reply, tree := tracedRequest(t, connectTo(t, nodes[1], "requester"), "greet.joe")

	assert.Equal(t, "responder", reply)
	root := tree.Root()
	assert.Equal(t, "node-2", root.Server.Name)
	in := root.Ingress()
	assert.Equal(t, msgtrace.Client, in.Kind)
	assert.Equal(t, "requester", in.Name)
	assert.Equal(t, "greet.joe", in.Subject)
	require.Len(t, root.Egresses(), 1)
	hop := root.Egresses()[0]
	assert.Equal(t, msgtrace.Route, hop.Kind)
	assert.Equal(t, "node-1", hop.Name)
	assert.Equal(t, "1", hop.Hop)
	next := tree.Next(hop)
	require.NotNil(t, next)
	assert.Equal(t, "node-1", next.Server.Name)
	assert.Equal(t, msgtrace.Route, next.Ingress().Kind)
	assert.Equal(t, "node-2", next.Ingress().Name)
	assert.Equal(t, []string{"node-2 route node-1 client responder"}, paths(tree))
	assert.Equal(t, []string{"node-2", "node-1"}, sortedLast(tree.Servers(), "node-2"))
	assert.Equal(t, `greet.joe entered node-2 from client "requester"
└─ route to node-1
   └─ client "responder" (sub greet.*)
`, tree.String())
}

// sortedLast returns names with first moved to the front (the root's report
// may arrive after another server's, which a route brings from afar).
func sortedLast(names []string, first string) []string {
	out := []string{first}
	for _, n := range names {
		if n != first {
			out = append(out, n)
		}
	}
	return out
}

// On a supercluster (east and west, 2 nodes each), a gather from east-2
// reaches the responder on east-1 over a route and the one on west-2 over
// the gateway to west (then, if the gateway landed on west-1, a route);
// the gather counts the two replies and nothing else: the reports go to
// the trace's own inbox.
func TestSuperclusterGather(t *testing.T) {
	sc := testserver.NewSupercluster(t, []string{"east", "west"}, 2)
	east, west := sc.Clusters[0], sc.Clusters[1]
	respond(t, east[0], "responder-east", "gather.demo", "")
	respond(t, west[1], "responder-west", "gather.demo", "")
	require.NoError(t, testserver.WaitForInterest(east[1], "gather.demo"))
	for _, s := range west {
		require.NoError(t, testserver.WaitForInterest(s, "gather.demo"))
	}
	nc := connectTo(t, east[1], "requester")
	tr, err := msgtrace.Start(nc)
	require.NoError(t, err)
	// Gateways carry interest only (nats-server's interest-only mode):
	// west's reports reach the trace's inbox once west knows of it.
	require.NoError(t, testserver.WaitForGatewayInterest(sc.Servers(), "east", tr.Dest()))
	res, err := gather.Gather(context.Background(), gather.Inbox{Conn: nc}, "gather.demo", nil,
		gather.Header(tr.Header()), gather.MaxReplies(2), gather.Timeout(5*time.Second))
	require.NoError(t, err)
	assert.Equal(t, 2, res.Count)
	assert.Zero(t, res.Skipped+res.Dropped+res.Unread, "only the replies reach the gather")
	var from []string
	for _, r := range res.Replies {
		from = append(from, string(r.Msg.Data))
	}
	assert.ElementsMatch(t, []string{"responder-east", "responder-west"}, from, "every reply is a responder's, none a report")
	tree, err := tr.Collect(context.Background(), 2*time.Second)
	require.NoError(t, err)
	require.True(t, tree.Complete(), "missing hops %q:\n%s", tree.Missing(), tree)
	assert.Zero(t, tree.Skipped, "only reports reach the trace")

	got := paths(tree)
	require.Len(t, got, 2, "%s", tree)
	assert.Contains(t, got, "east-2 route east-1 client responder-east")
	viaGateway := "east-2 gateway west-2 client responder-west"
	if !assert.Contains(t, []string{viaGateway, "east-2 gateway west-1 route west-2 client responder-west"}, otherThan(got, "east-2 route east-1 client responder-east")) {
		t.Log(tree)
	}
	assert.Contains(t, tree.String(), "gateway to west-")
	assert.Contains(t, tree.String(), "(cluster west)")
}

// otherThan returns the first of list that is not s.
func otherThan(list []string, s string) string {
	for _, l := range list {
		if l != s {
			return l
		}
	}
	return ""
}

// Over a leaf node: a request from the leaf to a responder on the hub
// crosses the leaf connection; a queue request with a member on each side
// stays on the leaf (a queue request goes to a local member first).
func TestLeaf(t *testing.T) {
	hub, err := testserver.StartHub(testserver.WithServerName("hub"))
	require.NoError(t, err)
	t.Cleanup(func() { testserver.Shutdown(hub.Server) })
	leaf, err := testserver.StartLeaf(hub, testserver.WithServerName("leaf"))
	require.NoError(t, err)
	t.Cleanup(func() { testserver.Shutdown(leaf) })

	respond(t, hub.Server, "hub-greeter", "greet.*", "")
	respond(t, hub.Server, "hub-worker", "work", "workers")
	respond(t, leaf, "leaf-worker", "work", "workers")
	require.NoError(t, testserver.WaitForInterest(leaf, "greet.joe"))
	nc := connectTo(t, leaf, "requester")

	cases := []struct {
		name, subject, reply, path string
	}{
		{name: "crossing", subject: "greet.joe", reply: "hub-greeter", path: "leaf leaf hub client hub-greeter"},
		{name: "queue kept local", subject: "work", reply: "leaf-worker", path: "leaf client leaf-worker"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reply, tree := tracedRequest(t, nc, tc.subject)
			assert.Equal(t, tc.reply, reply)
			assert.Equal(t, []string{tc.path}, paths(tree), "%s", tree)
			assert.Equal(t, "leaf", tree.Root().Server.Name)
		})
	}
	_, tree := tracedRequest(t, nc, "work")
	assert.True(t, strings.HasSuffix(tree.String(), "(sub work, queue workers)\n"), "%s", tree)
}

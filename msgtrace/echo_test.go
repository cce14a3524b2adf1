package msgtrace_test

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"reqreply/internal/testserver"
)

// A responder that echoes the request's headers in its reply sends the
// reply with Nats-Trace-Dest and Nats-Trace-Hop too, so the servers report
// the reply to the trace's inbox, under the request's hop ids. The tree
// stays the request's: each hop is taken from the server its egress
// crossed to. A reply's report, arriving before the request's own hop
// report, was taken for it (about one run in 30): "route to node-2 └─
// client requester (sub _INBOX...)". Many runs, each checked.
func TestEchoedHeadersKeepTheTree(t *testing.T) {
	nodes := testserver.NewCluster(t, 2)
	resp := connectTo(t, nodes[0], "responder")
	_, err := resp.Subscribe("svc", func(m *nats.Msg) {
		_ = m.RespondMsg(&nats.Msg{Data: []byte("responder"), Header: m.Header})
	})
	require.NoError(t, err)
	require.NoError(t, resp.Flush())
	require.NoError(t, testserver.WaitForInterest(nodes[1], "svc"))
	nc := connectTo(t, nodes[1], "requester")
	for range 60 {
		reply, tree := tracedRequest(t, nc, "svc")
		require.Equal(t, "responder", reply)
		require.Equal(t, "svc", tree.Root().Ingress().Subject)
		require.Equal(t, []string{"node-2 route node-1 client responder"}, paths(tree), "%s", tree)
	}
}

package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/probe"
)

// TestMixedListeners puts a queue group of 3, a second queue group of 2 and
// 2 plain listeners on one subject: each listener receives every request,
// and each request is answered by exactly one member of each group, so a
// requester gathering two replies gets one from each.
func TestMixedListeners(t *testing.T) {
	for _, concurrency := range []int{1, 16} {
		t.Run(fmt.Sprintf("concurrency=%d", concurrency), func(t *testing.T) {
			env := newEnv(t)
			workers, err := startWorkers(env, DefaultConfig(), 1, 3, nil)
			require.NoError(t, err)
			var auditors, listeners []*Member
			for i := 1; i <= 2; i++ {
				a, err := join(env, Subject, AuditGroup, fmt.Sprintf("auditor-%d", i), MemberOptions{})
				require.NoError(t, err)
				auditors = append(auditors, a)
				l, err := join(env, Subject, "", fmt.Sprintf("listener-%d", i), MemberOptions{Silent: true})
				require.NoError(t, err)
				listeners = append(listeners, l)
			}
			nc, err := env.Connect("requester")
			require.NoError(t, err)
			const requests = 200
			res, err := Load(context.Background(), nc, LoadConfig{
				Subject: Subject, Requests: requests, Concurrency: concurrency, Timeout: 5 * time.Second,
				Replies: 2, Settle: settleFrom(nc, slices.Concat(workers, auditors, listeners)...),
			})
			require.NoError(t, err)
			require.True(t, res.Exact(), "%+v", res)

			for _, l := range listeners {
				assert.EqualValues(t, requests, l.Received(), "%s missed requests", l.Name)
			}
			group := map[string]string{}
			for _, m := range slices.Concat(workers, auditors) {
				group[m.Name] = m.Group
			}
			for i, who := range res.PerRequest {
				require.Len(t, who, 2, "request %d", i+1)
				got := []string{group[who[0]], group[who[1]]}
				slices.Sort(got)
				assert.Equal(t, []string{AuditGroup, Group}, got, "request %d answered by %v", i+1, who)
			}
			_, w := countsOf(res, names(workers), false)
			_, a := countsOf(res, names(auditors), false)
			assert.Equal(t, requests, w[0]+w[1]+w[2])
			assert.Equal(t, requests, a[0]+a[1])
		})
	}
}

// TestSettleCountsCopiesOnTheRoute: on a cluster of 3, the requester
// publishes a burst on Subject and its server has accepted every copy (a
// flush); the plain subscribers, on the requester's node and on the others,
// are then settled from the requester. Each must have counted every copy:
// one still crossing a route when settling ends would be read as missing
// ("listener-1 received 59 of 60"). The burst fills the routes, so a settle
// that only flushes the subscriber's own connection reads them too early.
func TestSettleCountsCopiesOnTheRoute(t *testing.T) {
	tests := []struct {
		name  string
		nodes []int // the listeners' nodes; the requester is on node 0
	}{
		{name: "one listener on another node", nodes: []int{2}},
		{name: "a listener on each node", nodes: []int{0, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := topologyEnv(t, cli.Topology{Kind: cli.Cluster, Nodes: 3})
			var listeners []*Member
			for i, node := range tc.nodes {
				l, err := joinOn(env, node, Subject, "", fmt.Sprintf("listener-%d", i+1), MemberOptions{Silent: true})
				require.NoError(t, err)
				listeners = append(listeners, l)
			}
			nc, err := env.ConnectNode("requester", 0)
			require.NoError(t, err)
			ctx := context.Background()
			_, err = probe.Await(ctx, nc, Subject, probe.AllOf(names(listeners)...), 5*time.Second)
			require.NoError(t, err)

			const burst = 20000
			payload := make([]byte, 64)
			for range burst {
				require.NoError(t, nc.Publish(Subject, payload))
			}
			require.NoError(t, nc.Flush(), "the requester's server has accepted every copy")
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, settleFrom(nc, listeners...)(sctx))
			for _, l := range listeners {
				assert.EqualValues(t, burst, l.Received(), "%s on %s, read after settling", l.Name, l.Server)
			}
		})
	}
}

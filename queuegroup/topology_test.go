package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
	"reqreply/probe"
)

// topologyEnv starts the embedded topology t for one test and returns an
// Env on it whose events go to the returned buffer; drained and stopped
// when the test ends.
func topologyEnv(tb testing.TB, t cli.Topology) (*cli.Env, *clitest.Buffer) {
	tb.Helper()
	env, err := cli.EmbeddedTopology("queuegroup", t)
	require.NoError(tb, err)
	events := &clitest.Buffer{}
	env.Stderr = events
	tb.Cleanup(func() { require.NoError(tb, env.Close()) })
	return env, events
}

// topologies are the four shapes the topology tests run on.
var topologies = []struct {
	name string
	topo cli.Topology
	// near lists the node clusters whose members answer the requester
	// while any of them exists ("" when the server picks among all).
	near string
}{
	{name: "single", topo: cli.Topology{Kind: cli.Single}},
	{name: "cluster of 3", topo: cli.Topology{Kind: cli.Cluster, Nodes: 3}},
	{name: "hub and leaf", topo: cli.Topology{Kind: cli.Leaf}, near: "leaf"},
	{name: "supercluster", topo: cli.Topology{Kind: cli.Supercluster}, near: "east"},
}

// TestTopologyQueueGroup runs a queue group spread round-robin over the
// nodes of each topology, with the requester on another node than
// worker-1's: every request is answered exactly once; on a cluster the
// split over the nodes is measured (logged), not asserted; from a leaf
// node or in a supercluster only the members near the requester answer
// while they exist. Then the members leave one by one: while one is left
// anywhere a request is answered, and no responders comes only once the
// last one's interest is gone from the requester's node.
func TestTopologyQueueGroup(t *testing.T) {
	for _, tc := range topologies {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := topologyEnv(t, tc.topo)
			nodes := env.Nodes()
			cfg := DefaultConfig()
			cfg.Workers = 2 * len(nodes)
			members, err := startWorkers(env, cfg, 1, cfg.Workers, nil)
			require.NoError(t, err)
			nc, err := connectRequester(env)
			require.NoError(t, err)
			reqNode := nodes[env.RequesterNode()]
			assert.Equal(t, reqNode.Name, cli.ServerName(nc), "the requester's node")
			if len(nodes) > 1 {
				assert.NotEqual(t, members[0].Server, cli.ServerName(nc), "the requester shares worker-1's node")
			}
			// The members near the requester (all, without locality).
			var near []string
			for i, m := range members {
				if tc.near == "" || nodes[env.ResponderNode(i)].Cluster == tc.near {
					near = append(near, m.Name)
				}
			}
			ctx := context.Background()
			require.NoError(t, awaitMembers(ctx, env, &bytes.Buffer{}, nc, cfg, probe.AllOf(near...)))

			res, err := Load(ctx, nc, LoadConfig{Subject: Subject, Requests: 300, Concurrency: 4, Timeout: 5 * time.Second, Settle: settleAll(members...)})
			require.NoError(t, err)
			assert.True(t, res.Exact(), "every request answered exactly once: %+v", res)
			perNode := map[string]int{}
			for _, m := range members {
				if n := countOf(res, m.Name); n > 0 {
					perNode[m.Server] += n
					assert.Contains(t, near, m.Name, "%s answered %d requests from %s", m.Name, n, reqNode.Name)
				}
			}
			t.Logf("%s: split of 300 requests by node (requester on %s): %v", tc.name, reqNode.Name, perNode)

			// The members leave, the near ones last: until the last one has
			// gone, a request is answered (once interest has settled); then,
			// once the requester's node has no interest left, no responders.
			order := append([]*Member{}, members...)
			slicesPartition(order, func(m *Member) bool { return !contains(near, m.Name) })
			srv := env.Servers()[env.RequesterNode()]
			for i, m := range order {
				require.NoError(t, m.Drain(ctx))
				left := order[i+1:]
				if len(left) == 0 {
					break
				}
				// The server's own view from the requester's node: its local
				// members, plus one queue subscription per other node of its
				// own cluster or across the leaf connection that still has a
				// member (members in another cluster of a supercluster are
				// known through the gateway, not counted here).
				require.NoError(t, testserver.WaitForSubscribers(srv, Subject, visibleFrom(env, reqNode, left)))
				msg, err := nc.Request(Subject, []byte("1"), 5*time.Second)
				require.NoError(t, err, "with %d members left", len(left))
				assert.Contains(t, names(left), string(msg.Data))
			}
			require.NoError(t, testserver.WaitForNoInterest(srv, Subject))
			_, err = probe.AwaitNone(ctx, nc, Subject, 5*time.Second)
			require.NoError(t, err)
			_, err = nc.Request(Subject, []byte("1"), 5*time.Second)
			require.ErrorIs(t, err, nats.ErrNoResponders)
		})
	}
}

// visibleFrom is how many subscriptions matching Subject the server of node
// from counts while members are left: one per local member, one per other
// node with members reached by a route or the leaf connection.
func visibleFrom(env *cli.Env, from cli.Node, left []*Member) int {
	n := 0
	others := map[string]bool{}
	for _, m := range left {
		switch node := nodeNamed(env, m.Server); {
		case node.Name == from.Name:
			n++
		case node.Cluster == from.Cluster || node.Cluster == "hub" || node.Cluster == "leaf":
			others[node.Name] = true
		}
	}
	return n + len(others)
}

// nodeNamed returns the node of env named name.
func nodeNamed(env *cli.Env, name string) cli.Node {
	for _, n := range env.Nodes() {
		if n.Name == name {
			return n
		}
	}
	return cli.Node{}
}

// slicesPartition reorders s so that the elements for which first holds
// come first, keeping order within each part.
func slicesPartition[T any](s []T, first func(T) bool) {
	var a, b []T
	for _, v := range s {
		if first(v) {
			a = append(a, v)
		} else {
			b = append(b, v)
		}
	}
	copy(s, append(a, b...))
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestDemosOnCluster runs every demo that takes -cluster on an embedded
// cluster of 3 nodes: each succeeds, says where each connection sits, and
// no request is lost that NATS guarantees.
func TestDemosOnCluster(t *testing.T) {
	for _, demo := range []Demo{DemoShare, DemoMixed, DemoDrain, DemoScale, DemoDie, DemoGone, DemoSlow} {
		t.Run(string(demo), func(t *testing.T) {
			env, _ := topologyEnv(t, cli.Topology{Kind: cli.Cluster, Nodes: 3})
			cfg := DefaultConfig()
			cfg.Demo, cfg.Requests, cfg.Concurrency = demo, 60, 4
			if demo == DemoSlow {
				cfg.Requests = 20
			}
			var out bytes.Buffer
			require.NoError(t, Run(context.Background(), env, cfg, &out), out.String())
			if demo != DemoSlow {
				assert.Contains(t, out.String(), "requester on node-2")
			}
		})
	}
}

// TestEdgeDemos runs -demo leaf and -demo geo on their embedded topologies:
// every phase verified, with the members expected.
func TestEdgeDemos(t *testing.T) {
	tests := []struct {
		demo   Demo
		topo   cli.Topology
		phases []string
	}{
		{DemoLeaf, cli.Topology{Kind: cli.Leaf}, []string{"1. the leaf has a member", "2. no member on the leaf", "3. a member on the leaf again"}},
		{DemoGeo, cli.Topology{Kind: cli.Supercluster}, []string{"1. east has members", "2. no member in east", "3. a member in east again"}},
	}
	for _, tc := range tests {
		t.Run(string(tc.demo), func(t *testing.T) {
			env, _ := topologyEnv(t, tc.topo)
			cfg := DefaultConfig()
			cfg.Demo = tc.demo
			var out bytes.Buffer
			require.NoError(t, Run(context.Background(), env, cfg, &out), out.String())
			for _, p := range tc.phases {
				assert.Contains(t, out.String(), p)
			}
			assert.Equal(t, 3, strings.Count(out.String(), "verified: 30 requests"), out.String())
		})
	}
}

// TestEdgeDemosNeedTheirTopology: on one server, the leaf and geo demos
// refuse to run (a usage error), and never hang.
func TestEdgeDemosNeedTheirTopology(t *testing.T) {
	for _, demo := range []Demo{DemoLeaf, DemoGeo} {
		t.Run(string(demo), func(t *testing.T) {
			env := newEnv(t)
			cfg := DefaultConfig()
			cfg.Demo = demo
			err := Run(context.Background(), env, cfg, &bytes.Buffer{})
			require.ErrorIs(t, err, cli.ErrUsage)
		})
	}
}

// TestNodeLoss shuts down the node the requester is connected to a third
// of the way into a run on a cluster of 3, with and without -retry. The
// requester reconnects to another node (its URL list), the events say so,
// the requests in flight end within their timeout and are counted (every
// request in exactly one bucket), and -retry answers every one of them.
// No hang, no panic, no leaked goroutine (TestMain's goleak).
func TestNodeLoss(t *testing.T) {
	for _, retry := range []bool{false, true} {
		t.Run(fmt.Sprintf("retry=%v", retry), func(t *testing.T) {
			env, events := topologyEnv(t, cli.Topology{Kind: cli.Cluster, Nodes: 3})
			env.Reconnect = cli.Reconnect{Wait: 50 * time.Millisecond, Max: -1}
			cfg := DefaultConfig()
			cfg.Workers = 3
			members, err := startWorkers(env, cfg, 1, cfg.Workers, nil)
			require.NoError(t, err)
			nc, err := connectRequester(env)
			require.NoError(t, err)
			ctx := context.Background()
			require.NoError(t, awaitMembers(ctx, env, &bytes.Buffer{}, nc, cfg, probe.AllOf(names(members)...)))
			victim := env.Servers()[env.RequesterNode()]
			victimName := victim.Name()

			lc := LoadConfig{Subject: Subject, Requests: 300, Concurrency: 4, Timeout: time.Second, Retry: retry, At: 100}
			lc.Before = func(context.Context) error {
				// Shut the requester's node down while requests are in flight.
				go testserver.Shutdown(victim)
				return nil
			}
			// Settle the members still connected; the one on the lost node
			// reconnects elsewhere, or is counted as unsettled.
			lc.Settle = settleAll(members...)
			res, err := Load(ctx, nc, lc)
			require.NoError(t, err)
			assert.Equal(t, res.Requests, res.Answered+res.TimedOut+res.Failed+res.Unsent, "every request in one bucket: %+v", res)
			assert.Zero(t, res.Unsent)
			assert.Zero(t, res.Duplicates)
			if retry {
				assert.Equal(t, res.Requests, res.Answered, "-retry recovers every request: %+v", res)
			}
			t.Logf("retry=%v: %d answered (%d after a retry), %d timed out, %d failed, %d late", retry, res.Answered, res.RetryAnswered, res.TimedOut, res.Failed, res.Late)

			// The requester is on another node now, and said so.
			require.Eventually(t, nc.IsConnected, testserver.ReadyTimeout, time.Millisecond)
			assert.NotEqual(t, victimName, cli.ServerName(nc))
			assert.Contains(t, events.String(), "queuegroup requester: disconnected from")
			assert.Contains(t, events.String(), "queuegroup requester: reconnected to")
		})
	}
}

// TestProbeErrors: a probe for a member that never answers ends by its
// timeout with nats.ErrTimeout, and one on a subject nobody serves with
// nats.ErrNoResponders, each within its bound.
func TestProbeErrors(t *testing.T) {
	env := newEnv(t)
	_, err := join(env, Subject, Group, "worker-1", MemberOptions{})
	require.NoError(t, err)
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	ctx := context.Background()
	_, err = probe.Await(ctx, nc, Subject, probe.AllOf("worker-1", "ghost"), 100*time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout)
	assert.Contains(t, err.Error(), "ghost")
	_, err = probe.Await(ctx, nc, "nobody.here", probe.AnyResponder(), 100*time.Millisecond)
	require.ErrorIs(t, err, nats.ErrNoResponders)
	_, err = probe.AwaitNone(ctx, nc, Subject, 100*time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = probe.Await(cctx, nc, "nobody.here", probe.AnyResponder(), time.Second)
	require.True(t, errors.Is(err, context.Canceled), "%v", err)
}

// TestInTransit: only timeouts, with nothing else wrong, can be requests
// lost in transit; with -retry, those retried.
func TestInTransit(t *testing.T) {
	tests := []struct {
		name  string
		res   Result
		retry bool
		want  int
	}{
		{name: "none", res: Result{Requests: 10, Answered: 10}},
		{name: "timeouts", res: Result{Requests: 10, Answered: 8, TimedOut: 2}, want: 2},
		{name: "retried", res: Result{Requests: 10, Answered: 10, Retried: 2, RetryAnswered: 2}, retry: true, want: 2},
		{name: "a duplicate is a bug", res: Result{Requests: 10, Answered: 8, TimedOut: 2, Duplicates: 1}},
		{name: "a late reply is not lost", res: Result{Requests: 10, Answered: 8, TimedOut: 2, Late: 1}},
		{name: "failed", res: Result{Requests: 10, Answered: 8, TimedOut: 1, Failed: 1}},
		{name: "error replies", res: Result{Requests: 10, Answered: 8, TimedOut: 2, Errors: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, inTransit(&tc.res, tc.retry))
		})
	}
	var out bytes.Buffer
	writeInTransit(&out, 2, "worker-1", false)
	assert.Contains(t, out.String(), "NATS gives no guarantee")
	assert.Contains(t, out.String(), "run with -retry")
}

// TestShowWait: which waits for interest get a line. On several nodes
// every delay does; on one server only the server's own word (a probe that
// got no responders, or one still answered while the members leave), never
// a probe that merely went unanswered within its pause on a busy machine:
// that line made the output of `queuegroup -secure` depend on the load and
// named the server by its ID.
func TestShowWait(t *testing.T) {
	tests := []struct {
		name    string
		multi   bool
		leaving bool
		p       probe.Probed
		want    bool
	}{
		{name: "one server, at once", p: probe.Probed{Probes: 3, Seen: []string{"worker-1"}}},
		{name: "one server, a slow answer", p: probe.Probed{Probes: 4, Unanswered: 1, Seen: []string{"worker-1"}}},
		{name: "one server, no responders first", p: probe.Probed{Probes: 2, Refused: 1, Seen: []string{"worker-1"}}, want: true},
		{name: "one server, gone at once", leaving: true, p: probe.Probed{Probes: 1}},
		{name: "one server, gone after a slow probe", leaving: true, p: probe.Probed{Probes: 2, Unanswered: 1}},
		{name: "one server, still answered", leaving: true, p: probe.Probed{Probes: 2, Seen: []string{"worker-1"}}, want: true},
		{name: "cluster, at once", multi: true, p: probe.Probed{Probes: 3, Seen: []string{"worker-1"}}},
		// Unanswered counts late answers too: no delay by itself
		// (probe.Probed.Delayed matches each answer to its probe).
		{name: "cluster, a late answer", multi: true, p: probe.Probed{Probes: 4, Unanswered: 1, Seen: []string{"worker-1"}}},
		{name: "cluster, no responders first", multi: true, p: probe.Probed{Probes: 2, Refused: 1, Seen: []string{"worker-1"}}, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, showWait(tc.multi, tc.p, tc.leaving))
		})
	}
}

// TestManyRunsOnCluster runs the mixed demo's command line again and again
// against one embedded cluster of 3 nodes named by NATS_URL, as a user
// with a real cluster would: each run joins its subscribers afresh, spread
// over the nodes, and reads the listeners' counts after settling them from
// the requester. Not one run may fail: a copy still crossing a route is
// waited for, never counted as missing. (100 runs; 10 with -short.)
func TestManyRunsOnCluster(t *testing.T) {
	runs := 100
	if testing.Short() {
		runs = 10
	}
	var urls []string
	for _, s := range testserver.NewCluster(t, 3) {
		urls = append(urls, s.ClientURL())
	}
	vars := map[string]string{"NATS_URL": strings.Join(urls, ",")}
	for i := range runs {
		code, stdout, stderr := program(strings.Fields("-demo mixed -requests 60 -concurrency 4"), vars)
		require.Equal(t, cli.ExitOK, code, "run %d of %d:\n%s%s", i+1, runs, stdout, stderr)
		require.Contains(t, stdout, "verified: 60 requests, 120 replies", "run %d", i+1)
	}
	t.Logf("%d runs of -demo mixed on a cluster of 3, no failure", runs)
}

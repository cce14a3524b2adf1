package probe_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
	"reqreply/probe"
)

// TestAwaitRespondersAcrossACluster: responders on node-1 and node-3
// answer probes from node-2 once their interest has arrived; AllOf waits
// for both, and a probe is not a request to them (Answer says so).
func TestAwaitRespondersAcrossACluster(t *testing.T) {
	e, err := cli.EmbeddedTopology("prog", cli.Topology{Kind: cli.Cluster, Nodes: 3})
	require.NoError(t, err)
	e.Stderr = &bytes.Buffer{}
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	work := make(chan string, 10)
	for _, i := range []int{0, 2} {
		name := e.Nodes()[i].Name
		nc, err := e.ConnectNode(name, i)
		require.NoError(t, err)
		_, err = nc.QueueSubscribe("svc", "q", func(m *nats.Msg) {
			if probe.Answer(m, name) {
				return
			}
			work <- name
			_ = m.Respond([]byte(name))
		})
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
	}
	nc, err := e.ConnectNode("requester", 1)
	require.NoError(t, err)
	p, err := probe.Await(context.Background(), nc, "svc", probe.AllOf("node-1", "node-3"), 5*time.Second)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"node-1", "node-3"}, p.Seen)
	assert.Empty(t, work, "a probe counted as work")
	assert.Contains(t, p.String(), "answered by node-")
}

// TestAwaitNoRespondersDelayed: the no-responders status that ends a wait
// for interest to leave is no delay; a responder still answering first is.
func TestAwaitNoRespondersDelayed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		responder bool // a responder answers until it leaves, after the first probe
		delayed   bool
	}{
		{name: "nobody there", delayed: false},
		{name: "a responder leaves", responder: true, delayed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.New(t)
			nc, err := nats.Connect(srv.ClientURL())
			require.NoError(t, err)
			t.Cleanup(nc.Close)
			if tc.responder {
				var sub *nats.Subscription
				sub, err = nc.Subscribe("svc", func(m *nats.Msg) {
					if probe.Answer(m, "r") {
						_ = sub.Unsubscribe() // gone after its first answer
					}
				})
				require.NoError(t, err)
				require.NoError(t, nc.Flush())
			}
			p, err := probe.AwaitNone(context.Background(), nc, "svc", 5*time.Second)
			require.NoError(t, err)
			assert.Equal(t, tc.delayed, p.Delayed(), p.String())
		})
	}
}

// TestProbeLateAnswerIsNoDelay: an answer that comes after its probe's
// pause (as on a loaded machine; here every pause is cut to 1 ns, so that
// every answer is late and more probes go out before it is read) is no
// delay: a wait whose first probe's answer ended it printed "interest:
// waited ..." lines though nothing was waited for. A responder still
// answering before it leaves is a delay, late answers or not.
func TestProbeLateAnswerIsNoDelay(t *testing.T) {
	defer func(step time.Duration) { *probe.FirstStep = step }(*probe.FirstStep)
	*probe.FirstStep = time.Nanosecond
	for _, tc := range []struct {
		name      string
		responder string // "": nobody; "stays"; "leaves" after its first answer
		leaving   bool   // AwaitNone, else Await
		delayed   bool
	}{
		{name: "no responders at once, answered late", leaving: true, delayed: false},
		{name: "a responder at once, answered late", responder: "stays", delayed: false},
		{name: "a responder leaves, answered late", responder: "leaves", leaving: true, delayed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testserver.New(t)
			nc, err := nats.Connect(srv.ClientURL())
			require.NoError(t, err)
			t.Cleanup(nc.Close)
			if tc.responder != "" {
				var sub *nats.Subscription
				sub, err = nc.Subscribe("svc", func(m *nats.Msg) {
					if probe.Answer(m, "r") && tc.responder == "leaves" {
						_ = sub.Unsubscribe()
					}
				})
				require.NoError(t, err)
				require.NoError(t, nc.Flush())
			}
			var p probe.Probed
			if tc.leaving {
				p, err = probe.AwaitNone(context.Background(), nc, "svc", 10*time.Second)
			} else {
				p, err = probe.Await(context.Background(), nc, "svc", probe.AnyResponder(), 10*time.Second)
			}
			require.NoError(t, err)
			assert.Greater(t, p.Probes, 1, "the hook must make the first answer late: %s", p)
			assert.Equal(t, tc.delayed, p.Delayed(), p.String())
		})
	}
}

// TestProbesForManyPlainSubscribers: plain subscribers all answer every
// probe; probing again at once for each new name among those answers cost
// one probe per responder, each answered by all of them (a million answers
// for 1,000 responders). A wait for 300 of them now takes a few probes on
// a quiet machine; on a loaded one, pauses that end before the answers
// are read add probes (133 with two busy loops), so the bound is one
// probe per responder, which the old loop reached even on a quiet one.
func TestProbesForManyPlainSubscribers(t *testing.T) {
	srv := testserver.New(t)
	const n = 300
	var names []string
	for i := range n {
		nc, err := nats.Connect(srv.ClientURL())
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		name := fmt.Sprintf("r-%d", i)
		names = append(names, name)
		_, err = nc.Subscribe("svc", func(m *nats.Msg) { probe.Answer(m, name) })
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
	}
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	p, err := probe.Await(context.Background(), nc, "svc", probe.AllOf(names...), time.Minute)
	require.NoError(t, err)
	assert.Len(t, p.Seen, n)
	assert.Less(t, p.Probes, n, "one probe per new name: %s", p)
}

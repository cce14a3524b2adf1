package main

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/gather"
	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/multireply/variants"
	"reqreply/probe"
)

// Many responders on several nodes: the wait for their interest before the
// gather must not grow with the square of the responders. Every probe is
// answered by every responder, so probing until each responder has
// answered by name sends a new probe for almost every new name: about n
// probes of n answers each (a million messages for 1,000 responders),
// which used up the probe timeout and then the drain's. One answer from
// each other node shows that node's interest has reached the requester's
// node, and with it every responder there.
func TestManyRespondersOnSeveralNodes(t *testing.T) {
	tests := []struct {
		args       string
		responders int
	}{
		{args: "-cluster 3", responders: 1000},
		{args: "-supercluster", responders: 400},
	}
	for _, tc := range tests {
		t.Run(tc.args+"/responders="+strconv.Itoa(tc.responders), func(t *testing.T) {
			n := strconv.Itoa(tc.responders)
			args := append(strings.Fields(tc.args), "-delay", "0", "-timeout", "1m", "-responders", n, "-max", n)
			code, stdout, stderr := program(args, nil)
			require.Equal(t, cli.ExitOK, code, "%s\n%s", tail(stdout), tail(stderr))
			assert.Contains(t, stdout, n+" replies, stopped: max reached")
			assert.Len(t, printedReply.FindAllStringSubmatch(stdout, -1), tc.responders)
		})
	}
}

// tail is the end of a long output, for a failure message.
func tail(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, "connected to") && !strings.HasPrefix(l, "nodes:") && !strings.Contains(l, "reply from") {
			keep = append(keep, l)
		}
	}
	s = strings.Join(keep, "\n")
	return s[:min(len(s), 3000)]
}

// With no demo responders on several nodes (-responders 0: the gather
// ends with no responders), the placement line names the requester's node
// alone, not an empty list ("nodes: ; requester on east-2").
func TestPlacementWithoutResponders(t *testing.T) {
	for _, args := range []string{"-cluster 2", "-supercluster"} {
		t.Run(args, func(t *testing.T) {
			code, stdout, stderr := program(append(strings.Fields(args), "-responders", "0"), nil)
			require.Equal(t, cli.ExitFailure, code, "%s\n%s", stdout, stderr)
			assert.Regexp(t, `(?m)^nodes: requester on \S+$`, stdout)
			assert.NotContains(t, stdout, "nodes: ;")
		})
	}
}

// One responder per server answers a readiness probe, however many
// responders and connections there are: 250 responders on 100 connections
// over 1 server and over a 3-node cluster give 1 and 3 answers. The count
// is exact without a wait: each answering responder sends its probe answer
// before its reply to the gather that follows on the same subscription
// and connection, and the inbox variant reads both on the prober's own
// connection, in order; so once the gather has every reply, every probe
// answer is pending on the probe's inbox.
func TestOneProbeAnswerPerServer(t *testing.T) {
	tests := []struct {
		name string
		topo cli.Topology
		want int
	}{
		{"one server", cli.Topology{}, 1},
		{"cluster of 3", cli.Topology{Kind: cli.Cluster, Nodes: 3}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var env *cli.Env
			if tc.topo.Kind == cli.Cluster {
				var err error
				env, err = cli.EmbeddedTopology("multireply", tc.topo)
				require.NoError(t, err)
				var stderr clitest.Buffer
				env.Stderr = &stderr
				t.Cleanup(func() { _ = env.Close() })
			} else {
				env = newEnv(t)
			}
			ctx, stop := context.WithCancel(context.Background())
			t.Cleanup(stop)
			cfg := Config{Responders: 250, Seed: 1}
			placed, err := serveDemo(ctx, env, cfg)
			require.NoError(t, err)
			nc, err := env.ConnectNodeAs(cli.Requester, "requester", env.RequesterNode())
			require.NoError(t, err)
			t.Cleanup(nc.Close)
			if needProbe(placed, nc) {
				require.NoError(t, awaitResponders(ctx, io.Discard, nc, placed))
			}

			inbox := nc.NewInbox()
			probes, err := nc.SubscribeSync(inbox)
			require.NoError(t, err)
			require.NoError(t, nc.PublishMsg(&nats.Msg{Subject: DemoSubject, Reply: inbox, Header: nats.Header{probe.Header: []string{"1"}}}))
			res, err := gather.Gather(ctx, gather.Inbox{Conn: nc, Denials: variants.Hook{}}, DemoSubject, nil, gather.Timeout(time.Minute), gather.MaxReplies(cfg.Responders))
			require.NoError(t, err)
			require.Equal(t, cfg.Responders, res.Count)
			n, _, err := probes.Pending()
			require.NoError(t, err)
			assert.Equal(t, tc.want, n)
		})
	}
}

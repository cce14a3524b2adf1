package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
)

// printedReply is one printed reply: arrival time, responder, where, payload.
var printedReply = regexp.MustCompile(`(?m)^ +\+\S+ +(responder-\d+) +(.*?) *reply from (responder-\d+)$`)

// -cluster 3 and -supercluster, through the command line as main runs
// them, in every variant: the responders are spread over the nodes (and
// both clusters), the requester sits on another node than responder-1's,
// it waits for their interest, and the gather collects one reply from
// every responder, each printed with its node (and cluster). A readiness
// probe is never counted as a reply: every reply line is a real reply
// (its payload "reply from ..."), one per responder.
func TestTopologies(t *testing.T) {
	tests := []struct {
		args       string
		responders int
		where      []string // each must appear in some reply line's place
		requester  string
	}{
		{args: "-cluster 3", responders: 6, where: []string{"on node-1", "on node-2", "on node-3"}, requester: "requester on node-2"},
		{args: "-supercluster", responders: 4, where: []string{"east-1 (east)", "east-2 (east)", "west-1 (west)", "west-2 (west)"}, requester: "requester on east-2"},
	}
	for _, tc := range tests {
		for _, variant := range variants.Names {
			t.Run(tc.args+"/variant="+variant, func(t *testing.T) {
				n := strconv.Itoa(tc.responders)
				args := append(strings.Fields(tc.args), "-variant", variant, "-delay", "0", "-timeout", "1m", "-responders", n, "-max", n)
				code, stdout, stderr := program(args, nil)
				require.Equal(t, cli.ExitOK, code, "%s\n%s", stdout, stderr)
				assert.Contains(t, stdout, n+" replies, stopped: max reached")
				assert.Contains(t, stdout, tc.requester)
				assert.Contains(t, stderr, "using an embedded")
				assert.Contains(t, stderr, "requester: connected to")
				lines := printedReply.FindAllStringSubmatch(stdout, -1)
				require.Len(t, lines, tc.responders, stdout)
				seen := map[string]bool{}
				places := map[string]bool{}
				for _, l := range lines {
					assert.Equal(t, l[1], l[3], "the header and the payload name the same responder")
					seen[l[1]] = true
					places[l[2]] = true
				}
				assert.Len(t, seen, tc.responders, "one reply from each responder")
				for _, w := range tc.where {
					assert.True(t, places[w], "a reply from %s in:\n%s", w, stdout)
				}
			})
		}
	}
}

// -discover on a cluster and a supercluster: the three micro service
// instances are spread over the nodes, and the discoverer, elsewhere,
// waits until all three answer before it reports them.
func TestDiscoverTopologies(t *testing.T) {
	for _, args := range []string{"-cluster 3", "-supercluster"} {
		for _, variant := range variants.Names {
			t.Run(args+"/variant="+variant, func(t *testing.T) {
				code, stdout, stderr := program(append(strings.Fields(args), "-discover", "-variant", variant), nil)
				require.Equal(t, cli.ExitOK, code, "%s\n%s", stdout, stderr)
				assert.Contains(t, stdout, "$SRV.PING.greeter: 3 answers")
				assert.Contains(t, stdout, "$SRV.INFO.greeter: 3 answers")
			})
		}
	}
}

// firstReply is a writer that keeps what it is given and closes Ready once
// a reply line has been written: the moment a test makes a fault happen
// during a gather, without a sleep.
type firstReply struct {
	clitest.Buffer
	once  sync.Once
	Ready chan struct{}
}

func (w *firstReply) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if strings.Contains(string(p), "reply from") {
		w.once.Do(func() { close(w.Ready) })
	}
	return n, err
}

// The node the requester is connected to is shut down during a gather on
// a 3-node cluster, in every variant: the gather ends by its own deadline
// (no -max) with the replies so far and says why, the requester
// reconnects to another node (both events printed with their times), and
// nothing hangs, panics or leaks (goleak, TestMain).
func TestNodeLossDuringGather(t *testing.T) {
	for _, variant := range variants.Names {
		t.Run("variant="+variant, func(t *testing.T) {
			env, err := cli.EmbeddedTopology("multireply", cli.Topology{Kind: cli.Cluster, Nodes: 3})
			require.NoError(t, err)
			var stderr clitest.Buffer
			env.Stderr = &stderr
			env.Reconnect = cli.Reconnect{Wait: 10 * time.Millisecond, Max: -1}
			t.Cleanup(func() { _ = env.Close() })
			requesterNode := env.Servers()[env.RequesterNode()]

			out := &firstReply{Ready: make(chan struct{})}
			cfg := Config{Responders: 6, Timeout: 3 * time.Second, Variant: variant, Delay: time.Second, Seed: 1}
			done := make(chan error, 1)
			go func() { done <- Run(context.Background(), env, cfg, out) }()
			select {
			case <-out.Ready:
			case err := <-done:
				t.Fatalf("the run ended before any reply: %v\n%s", err, out.String())
			}
			testserver.Shutdown(requesterNode)
			require.NoError(t, <-done, out.String())

			stdout := out.String()
			assert.Regexp(t, `replies?, stopped: deadline at`, stdout)
			assert.Contains(t, stdout, "note: the requester's connection")
			assert.Regexp(t, `\d\d:\d\d:\d\d\.\d+Z multireply requester: disconnected from`, stderr.String())
			require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "multireply requester: reconnected to") },
				30*time.Second, time.Millisecond, "the requester reconnects to another node")
		})
	}
}

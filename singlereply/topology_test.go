package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

// interestLine is the optional line a run writes when the requester had to
// wait for the greeter's interest: whether it does depends on how fast the
// route carried the interest, so the tests accept it and check its form.
var interestLine = regexp.MustCompile(`^interest: waited \S+ for the greeter to be visible from \S+: \d+ probes \(\d+ got no responders, \d+ no answer within their pause\), answered by greeter$`)

// withoutInterest returns out without its interest line, checking that
// line's form.
func withoutInterest(t *testing.T, out string) string {
	t.Helper()
	var kept []string
	for _, line := range strings.SplitAfter(out, "\n") {
		if strings.HasPrefix(line, "interest: ") {
			assert.Regexp(t, interestLine, strings.TrimSuffix(line, "\n"))
			continue
		}
		kept = append(kept, line)
	}
	return strings.Join(kept, "")
}

// The program's command line on an embedded topology (-cluster N): the
// greeter sits on node-1, the requester on node-2 (the output names each),
// and every request is answered, never a spurious no responders, because
// the requester waits for the greeter's interest before its first request.
func TestCluster(t *testing.T) {
	tests := []struct {
		args  string
		nodes string // the nodes line, "" for none
		want  string // the replies
		usage string // else: a part of the one usage line (exit 2)
	}{
		{args: "-secure -cluster 3", usage: "does not combine with -secure"},
		{args: "-cluster 1", want: "hello, joe\nhello, sue\nhello, bob\n"},
		{args: "-cluster 2 ann", nodes: "nodes: greeter on node-1, requester on node-2\n", want: "hello, ann\n"},
		{args: "-cluster 3", nodes: "nodes: greeter on node-1, requester on node-2\n", want: "hello, joe\nhello, sue\nhello, bob\n"},
		{args: "-cluster 3 -timeout 50ms ann bob", nodes: "nodes: greeter on node-1, requester on node-2\n", want: "hello, ann\nhello, bob\n"},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			code, stdout, stderr := program(strings.Fields(tc.args), nil)
			if tc.usage != "" {
				assert.Equal(t, cli.ExitUsage, code)
				assert.Contains(t, stderr, tc.usage)
				assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %s", stderr)
				return
			}
			require.Equal(t, cli.ExitOK, code, stdout+stderr)
			assert.Equal(t, tc.nodes+tc.want, withoutInterest(t, stdout))
			assert.NotContains(t, stdout+stderr, nats.ErrNoResponders.Error())
			if tc.nodes != "" {
				assert.Regexp(t, `(?m)^singlereply service: connected to node-1 at nats://127\.0\.0\.1:\d+$`, stderr)
				assert.Regexp(t, `(?m)^singlereply requester: connected to node-2 at nats://127\.0\.0\.1:\d+$`, stderr)
			}
		})
	}
}

// natsURL lists the client URLs of servers, as NATS_URL does.
func natsURL(servers []*server.Server) string {
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	return strings.Join(urls, ",")
}

// TestManyRunsOnCluster runs the program's command line again and again
// against one embedded cluster of 3 nodes named by NATS_URL, as a user
// with a real cluster would: each run subscribes afresh, so each run's
// requester must wait for the interest to cross the route. Not one run may
// fail. (30 runs; 5 with -short.)
func TestManyRunsOnCluster(t *testing.T) {
	runs := 30
	if testing.Short() {
		runs = 5
	}
	nodes := testserver.NewCluster(t, 3)
	vars := map[string]string{"NATS_URL": natsURL(nodes)}
	waited := 0
	for i := range runs {
		code, stdout, stderr := program(nil, vars)
		require.Equal(t, cli.ExitOK, code, "run %d of %d:\n%s%s", i+1, runs, stdout, stderr)
		assert.Equal(t, "nodes: greeter on node-1, requester on node-2\nhello, joe\nhello, sue\nhello, bob\n", withoutInterest(t, stdout), "run %d", i+1)
		if strings.Contains(stdout, "interest: waited") {
			waited++
		}
	}
	t.Logf("%d runs, no failure; %d printed a wait for interest", runs, waited)
}

// TestRequestNobodyServing: a -request half with no greeter anywhere fails
// with one line, the requests' own no-responders errors; the readiness
// probes, which saw the same, do not say it a second time.
func TestRequestNobodyServing(t *testing.T) {
	s := testserver.New(t)
	tests := []struct {
		args string
		want string // the one line's start
	}{
		{args: "-request ann", want: `singlereply: 1 of 1 requests failed: greet "greet.ann": nats: no responders available for request`},
		{args: "-request ann bob", want: `singlereply: 2 of 2 requests failed: greet "greet.ann": nats: no responders available for request; greet "greet.bob"`},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			code, stdout, stderr := program(strings.Fields(tc.args), map[string]string{"NATS_URL": s.ClientURL()})
			assert.Equal(t, cli.ExitFailure, code)
			assert.Empty(t, stdout)
			assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %s", stderr)
			assert.True(t, strings.HasPrefix(stderr, tc.want), stderr)
		})
	}
}

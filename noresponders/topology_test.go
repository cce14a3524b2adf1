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

// interestLine is the form of the optional lines a run writes when the
// requester had to wait for interest to arrive or to go: whether it does
// depends on how fast the route carried the change, so the tests accept
// them and check their form.
var interestLine = regexp.MustCompile(`^interest: waited \S+ for the (greeter to be visible from|silent subscriber to be visible from|greeter's interest to leave) \S+: \d+ probes \(\d+ got no responders, \d+ no answer within their pause\), answered by \S+$`)

// withoutInterest returns out without its interest lines, checking their
// form, and with the measured durations masked (maskElapsed).
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
	return maskElapsed(strings.Join(kept, ""))
}

// The program's command line on an embedded topology (-cluster N): the
// responders sit on node-1, the requester on node-2 (the output names
// each). The first request is answered, never a spurious no responders,
// and the second fails with no responders, never a timeout, because the
// requester waits for the greeter's interest to arrive and then to go.
func TestCluster(t *testing.T) {
	const (
		answered = "hello, joe\ngreeter drained: nobody subscribes to greet.* any more\n"
		failed   = "no responders: failed after <elapsed> instead of waiting out the 2s timeout\n"
	)
	tests := []struct {
		args  string
		want  string // stdout, without the interest lines, durations masked
		usage string // else: a part of the one usage line (exit 2)
	}{
		{args: "-cluster 1", want: answered + failed},
		{args: "-cluster 2", want: "nodes: greeter on node-1, requester on node-2\n" + answered + failed},
		{args: "-cluster 3", want: "nodes: greeter on node-1, requester on node-2\n" + answered + failed},
		{args: "-cluster 3 -silent -timeout 1s", want: "nodes: greeter and silent subscriber on node-1, requester on node-2\n" + answered +
			"no responders: failed after <elapsed> instead of waiting out the 1s timeout\n" +
			"timeout: failed after <elapsed>, the whole 1s timeout: silent.* has a subscriber that never answers\n"},
		{args: "-secure -cluster 3", usage: "does not combine with -secure"},
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
			assert.Equal(t, tc.want, withoutInterest(t, stdout))
			assert.NotContains(t, stdout+stderr, nats.ErrNoResponders.Error())
			if strings.HasPrefix(tc.want, "nodes: ") {
				assert.Regexp(t, `(?m)^noresponders service: connected to node-1 at nats://127\.0\.0\.1:\d+$`, stderr)
				assert.Regexp(t, `(?m)^noresponders requester: connected to node-2 at nats://127\.0\.0\.1:\d+$`, stderr)
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
// with a real cluster would: each run's greeter subscribes afresh and
// drains after one request, so each run's requester must wait for the
// interest to cross the route, and then for its loss to. Not one run may
// fail: the first request always answered, the second always no
// responders, never a timeout. (30 runs; 5 with -short.)
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
		assert.Equal(t, "nodes: greeter on node-1, requester on node-2\nhello, joe\ngreeter drained: nobody subscribes to greet.* any more\n"+
			"no responders: failed after <elapsed> instead of waiting out the 2s timeout\n", withoutInterest(t, stdout), "run %d", i+1)
		if strings.Contains(stdout, "interest: waited") {
			waited++
		}
	}
	t.Logf("%d runs, no failure; %d printed a wait for interest", runs, waited)
}

// TestRequestNobodyServing: a -request half with no greeter anywhere fails
// with one line, the request's own no-responders error (which says what to
// start); the readiness probes, which saw the same, do not say it a second
// time.
func TestRequestNobodyServing(t *testing.T) {
	s := testserver.New(t)
	tests := []struct {
		args string
		want string // a part of the one line
	}{
		{args: "-request", want: `noresponders: request "greet.joe": nats: no responders available for request (nobody serves greet.*: start noresponders -serve`},
		{args: "-request -silent -timeout 1s", want: `noresponders: request "greet.joe": nats: no responders available for request`},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			code, stdout, stderr := program(strings.Fields(tc.args), map[string]string{"NATS_URL": s.ClientURL()})
			assert.Equal(t, cli.ExitFailure, code)
			assert.Empty(t, stdout)
			assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %s", stderr)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

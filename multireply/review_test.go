package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
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

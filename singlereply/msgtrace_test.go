package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
)

// serverID is an unnamed server's name in a report: its ID.
var serverID = regexp.MustCompile(`entered N[A-Z0-9]{55} from`)

// -msgtrace: the first request's hops, printed after its reply, as the
// topology places the connections: on one server (unnamed: its ID) the
// greeter's connection is reached there; on -cluster 3 the request enters node-2 from the
// requester and crosses the route to node-1, where the greeter is. The
// other names are answered as without it; -serve and -secure refuse it.
func TestMsgTrace(t *testing.T) {
	const tree1 = `msgtrace: where the request went, as the servers reported it:
  greet.joe entered <server id> from client "singlereply requester"
  └─ client "singlereply service" (sub greet.*)
`
	const tree3 = `msgtrace: where the request went, as the servers reported it:
  greet.joe entered node-2 from client "singlereply requester"
  └─ route to node-1
     └─ client "singlereply service" (sub greet.*)
`
	tests := []struct {
		args  string
		want  string
		usage string
	}{
		{args: "-msgtrace -cluster 1", want: "hello, joe\n" + tree1 + "hello, sue\nhello, bob\n"},
		{args: "-msgtrace -cluster 3", want: "nodes: greeter on node-1, requester on node-2\nhello, joe\n" + tree3 + "hello, sue\nhello, bob\n"},
		{args: "-msgtrace -serve", usage: "-msgtrace does nothing with -serve"},
		{args: "-msgtrace -secure", usage: "-msgtrace does not combine with -secure"},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			code, stdout, stderr := program(strings.Fields(tc.args), nil)
			if tc.usage != "" {
				assert.Equal(t, cli.ExitUsage, code)
				assert.Contains(t, stderr, tc.usage)
				return
			}
			require.Equal(t, cli.ExitOK, code, stdout+stderr)
			assert.Equal(t, tc.want, serverID.ReplaceAllString(withoutInterest(t, stdout), "entered <server id> from"))
		})
	}
}

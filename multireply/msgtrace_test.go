package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
)

// -msgtrace on -supercluster: the gather's request enters east-2 from the
// requester's gather connection; responder-2 is reached there, responder-1
// and responder-5 over the route to east-1, responder-3 and responder-4
// over the gateway to west (then the route between west-1 and west-2,
// whichever the gateway reached); the gather counts the 5 replies until its
// deadline, and nothing else: the reports go to the trace's own inbox.
func TestMsgTraceSupercluster(t *testing.T) {
	code, stdout, stderr := program([]string{"-supercluster", "-msgtrace"}, nil)
	require.Equal(t, cli.ExitOK, code, stdout+stderr)
	assert.Contains(t, stdout, "5 replies, stopped: deadline", "the 5 replies, and nothing more until the deadline")
	_, tree, ok := strings.Cut(stdout, "msgtrace: where the request went, as the servers reported it:\n")
	require.True(t, ok, stdout)
	assert.Regexp(t, `^  gather\.demo entered east-2 from client "multireply requester( mux)?"\n`, tree)
	for _, want := range []string{
		"  ├─ client \"multireply responder-2\" (sub gather.demo)\n",
		"  ├─ route to east-1\n",
		"  │  ├─ client \"multireply responder-",
		"  └─ gateway to west-",
		" (cluster west)\n",
		"     ├─ client \"multireply responder-",
		"     └─ route to west-",
	} {
		assert.Contains(t, tree, want)
	}
	for _, r := range []string{"1", "5"} {
		assert.Regexp(t, regexp.MustCompile(`│  [├└]─ client "multireply responder-`+r+`"`), tree)
	}
	for _, r := range []string{"3", "4"} {
		assert.Regexp(t, regexp.MustCompile(`(     |        )[├└]─ client "multireply responder-`+r+`"`), tree)
	}
	assert.Equal(t, 5, strings.Count(tree, "client \"multireply responder-"), tree)
}

// -msgtrace is refused where it would trace nothing.
func TestMsgTraceRefused(t *testing.T) {
	for _, args := range []string{"-msgtrace -serve", "-msgtrace -discover", "-msgtrace -secure"} {
		t.Run(args, func(t *testing.T) {
			code, _, stderr := program(strings.Fields(args), nil)
			assert.Equal(t, cli.ExitUsage, code)
			assert.Contains(t, stderr, "-msgtrace")
		})
	}
}

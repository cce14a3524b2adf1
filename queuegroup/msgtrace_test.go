package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
)

// -msgtrace on the leaf demo: the first request of each phase enters the
// leaf from the requester; in phases 1 and 3 it goes to the leaf's own
// member, queue group and all; in phase 2, with no member on the leaf, it
// crosses the leaf connection to the hub and one of its members.
func TestMsgTraceLeaf(t *testing.T) {
	code, stdout, stderr := program([]string{"-demo", "leaf", "-msgtrace", "-requests", "5"}, nil)
	require.Equal(t, cli.ExitOK, code, stdout+stderr)
	const head = "msgtrace: where the request went, as the servers reported it:\n" +
		"  queuegroup.work entered leaf from client \"queuegroup requester\"\n"
	const local = head + "  └─ client \"queuegroup leaf-worker\" (sub queuegroup.work, queue workers)\n"
	crossing := head + "  └─ leaf to hub\n     └─ client \"queuegroup hub-worker-"
	phases := strings.Split(stdout, "\n2. ")
	require.Len(t, phases, 2, stdout)
	before3, phase3, ok := strings.Cut(phases[1], "\n3. ")
	require.True(t, ok, stdout)
	assert.Contains(t, phases[0], local)
	assert.Contains(t, before3, crossing)
	assert.Contains(t, before3, "(sub queuegroup.work, queue workers)\n")
	assert.Contains(t, phase3, local)
}

// -msgtrace on the geo demo: in phase 2, with no member in east, the
// first request crosses the gateway from east-2 to west.
func TestMsgTraceGeo(t *testing.T) {
	code, stdout, stderr := program([]string{"-demo", "geo", "-msgtrace", "-requests", "5"}, nil)
	require.Equal(t, cli.ExitOK, code, stdout+stderr)
	_, phase2, ok := strings.Cut(stdout, "\n2. ")
	require.True(t, ok, stdout)
	phase2, _, _ = strings.Cut(phase2, "\n3. ")
	assert.Contains(t, phase2, "  queuegroup.work entered east-2 from client \"queuegroup requester\"\n  └─ gateway to west-")
	assert.Contains(t, phase2, " (cluster west)\n")
	assert.Contains(t, phase2, "client \"queuegroup west-worker-")
	assert.Equal(t, 3, strings.Count(stdout, "msgtrace: where the request went"), stdout)
}

// -msgtrace is refused where it would trace nothing or break the run.
func TestMsgTraceRefused(t *testing.T) {
	for _, args := range []string{"-msgtrace -serve", "-msgtrace -secure", "-msgtrace -demo slow"} {
		t.Run(args, func(t *testing.T) {
			code, _, stderr := program(strings.Fields(args), nil)
			assert.Equal(t, cli.ExitUsage, code)
			assert.Contains(t, stderr, "-msgtrace")
		})
	}
}

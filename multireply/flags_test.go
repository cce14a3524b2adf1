package main

import (
	"flag"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
)

// TestFlagCombinations runs the program's command line through cli.Exec, as
// main does, with a run that connects nowhere: a flag that the chosen half
// or demo would ignore is refused with exit 2 and one line naming it.
func TestFlagCombinations(t *testing.T) {
	tests := []struct {
		args  string
		unset bool   // NATS_URL unset
		want  string // "" for a run; else a part of the one usage line
	}{
		{args: ""},
		{args: "-serve -responders 3 -delay 1s -seed 2 -sentinel"},
		{args: "-serve -max 2", want: "-max does nothing with -serve"},
		{args: "-serve -stall 10ms", want: "-stall does nothing with -serve"},
		{args: "-serve -variant inbox", want: "-variant does nothing with -serve"},
		{args: "-serve -timeout 2s", want: "-timeout does nothing with -serve"},
		{args: "-request -max 2 -stall 10ms -variant inbox -timeout 2s -sentinel"},
		{args: "-request -responders 3", want: "-responders does nothing with -request"},
		{args: "-request -delay 1s", want: "-delay does nothing with -request"},
		{args: "-request -seed 3", want: "-seed does nothing with -request"},
		{args: "-request", unset: true, want: "-request needs NATS_URL"},
		{args: "-discover -variant inbox -timeout 2s"},
		{args: "-discover -responders 3", want: "-responders does nothing with -discover"},
		{args: "-discover -delay 1s", want: "-delay does nothing with -discover"},
		{args: "-discover -seed 2", want: "-seed does nothing with -discover"},
		{args: "-discover -max 2", want: "-discover sets its own stop conditions"},
		{args: "-discover -serve"},
		{args: "-discover -request -variant natsext"},
		{args: "-expect -responders 5 -kill 1 -variant natsext -timeout 2s"},
		{args: "-expect -serve -responders 5"},
		{args: "-expect -request -variant inbox"},
		{args: "-kill 1", want: "-kill does nothing without -expect"},
		{args: "-expect -kill -1", want: "-kill -1: want 0..4"},
		{args: "-expect -serve -kill 1", want: "-kill needs both halves"},
		{args: "-expect -responders 2 -kill 2", want: "-kill 2: want"},
		{args: "-expect -discover", want: "drop -discover and -sentinel"},
		{args: "extra", want: "unexpected arguments"},
		// -supercluster is refused where -cluster is, and with -cluster.
		{args: "-supercluster -cluster 3", unset: true, want: "-cluster does nothing with -supercluster"},
		{args: "-cluster 3", want: "drop -cluster"},
		{args: "-supercluster", want: "unset NATS_URL"},
		{args: "-cluster 3 -context x", unset: true, want: "does not combine with -secure or -context"},
		{args: "-supercluster -context x", unset: true, want: "does not combine with -secure or -context"},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			clitest.CheckFlags(t, func() (*flag.FlagSet, func() error) {
				var cfg Config
				return flags(&cfg)
			}, tc.args, tc.unset, tc.want)
		})
	}
}

// -secure, which the program adds through cli.SecureWith, is refused with
// -cluster and -supercluster alike: the embedded servers have no users.
func TestSecureFlagCombinations(t *testing.T) {
	for _, args := range []string{"-secure -cluster 3", "-secure -supercluster"} {
		t.Run(args, func(t *testing.T) {
			code, stdout, stderr := program(strings.Fields(args), nil)
			assert.Equal(t, cli.ExitUsage, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, "does not combine with -secure or -context")
			assert.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
		})
	}
}

package main

import (
	"flag"
	"testing"

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
		{args: "extra", want: "unexpected arguments"},
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

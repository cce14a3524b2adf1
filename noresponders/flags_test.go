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
		{args: "-silent -timeout 1s"},
		{args: "-serve"},
		{args: "-serve -silent"},
		{args: "-serve -timeout 1s", want: "-timeout does nothing with -serve"},
		{args: "-request -silent -timeout 1s"},
		{args: "-request", unset: true, want: "-request needs NATS_URL"},
		{args: "joe", want: "takes flags only"},
		{args: "-max-reconnects -1"},
		{args: "-cluster 3", want: "with NATS_URL set the servers are yours"},
		{args: "-cluster 3 -silent", unset: true},
		{args: "-cluster 0", unset: true, want: "-cluster"},
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

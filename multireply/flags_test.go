package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"reqreply/internal/cli"
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
			var cfg Config
			fs, check := flags(&cfg)
			getenv := func(key string) string {
				if key == "NATS_URL" && !tc.unset {
					return "nats://127.0.0.1:1"
				}
				return ""
			}
			ran := false
			run := func(context.Context, *cli.Env) error { ran = true; return nil }
			var stderr bytes.Buffer
			code := cli.Exec(fs, strings.Fields(tc.args), check, run, getenv, &stderr)
			if tc.want == "" {
				assert.Equal(t, cli.ExitOK, code, stderr.String())
				assert.True(t, ran)
				return
			}
			assert.Equal(t, cli.ExitUsage, code)
			assert.False(t, ran)
			assert.Contains(t, stderr.String(), tc.want)
			assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %s", stderr.String())
		})
	}
}

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
		{args: "ann bob"},
		{args: "-timeout 1s ann"},
		{args: "-serve"},
		{args: "-serve -timeout 1s", want: "-timeout does nothing with -serve"},
		{args: "-serve ann", want: "-serve answers any name"},
		{args: "-request ann"},
		{args: "-request -timeout 1s ann"},
		{args: "-request", unset: true, want: "-request needs NATS_URL"},
		{args: "-serve", unset: true},
		{args: "joe -timeout 1s", want: `"-timeout" after the argument "joe"`},
		{args: "-- -joe", want: ""},
		{args: "a.b", want: "one subject token"},
		{args: "-max-reconnects 3 -reconnect-wait 1s joe"},
		{args: "-serve -request", want: "exclude each other"},
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

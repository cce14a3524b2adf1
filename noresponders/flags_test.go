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
		{args: "-silent -timeout 1s"},
		{args: "-serve"},
		{args: "-serve -silent"},
		{args: "-serve -timeout 1s", want: "-timeout does nothing with -serve"},
		{args: "-request -silent -timeout 1s"},
		{args: "-request", unset: true, want: "-request needs NATS_URL"},
		{args: "joe", want: "takes flags only"},
		{args: "-max-reconnects -1"},
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

package main

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"reqreply/internal/cli"
	"reqreply/internal/cli/clitest"
	"reqreply/internal/testserver"
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
		{args: "-serve -workers 4 -slow 5ms"},
		{args: "-serve -requests 10", want: "-requests does nothing with -serve"},
		{args: "-serve -concurrency 4", want: "-concurrency does nothing with -serve"},
		{args: "-serve -timeout 2s", want: "-timeout does nothing with -serve"},
		{args: "-serve -retry", want: "-retry does nothing with -serve"},
		{args: "-request -requests 10 -concurrency 4 -timeout 2s -retry"},
		{args: "-request -workers 4", want: "-workers does nothing with -request"},
		{args: "-request -slow 5ms", want: "-slow does nothing with -request"},
		{args: "-request", unset: true, want: "-request needs NATS_URL"},
		{args: "-demo micro -serve -workers 2"},
		{args: "-demo micro -request -workers 2", want: "-workers does nothing with -request"},
		{args: "-demo die -serve", want: "-serve and -request work with -demo share or micro"},
		{args: "extra", want: "takes flags only"},
		{args: "-cluster 3", want: "with NATS_URL set the servers are yours"},
		{args: "-cluster 3", unset: true},
		{args: "-cluster 9", unset: true, want: "-cluster"},
		{args: "-demo leaf", unset: true},
		{args: "-demo geo -requests 5", unset: true},
		{args: "-demo leaf", want: "hub with a leaf node; with NATS_URL set"},
		{args: "-demo geo", want: "supercluster"},
		{args: "-demo leaf -cluster 3", unset: true, want: "-cluster does nothing with -demo leaf"},
		{args: "-demo geo -workers 2", unset: true, want: "-workers does nothing with -demo geo"},
		// -secure: every demo on one server; not leaf or geo, whose
		// servers have no users, nor -cluster; both halves only.
		{args: "-secure", unset: true},
		{args: "-secure -demo micro -workers 2", unset: true},
		{args: "-secure -demo die -retry", unset: true},
		{args: "-secure"}, // NATS_URL set: said unused, not refused
		{args: "-secure -demo leaf", unset: true, want: "-demo leaf starts its own servers, which have no users"},
		{args: "-secure -demo geo", unset: true, want: "-demo geo starts its own servers, which have no users"},
		{args: "-secure -cluster 3", unset: true, want: "does not combine with -secure"},
		{args: "-secure -serve", unset: true, want: "-secure runs both halves"},
		{args: "-secure -request", want: "-secure runs both halves"},
		{args: "-secure -context x", unset: true, want: "-secure and -context exclude each other"},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			var cfg Config
			clitest.CheckFlags(t, func() (*flag.FlagSet, func() error) {
				cfg = DefaultConfig()
				return flags(&cfg)
			}, tc.args, tc.unset, tc.want, secure(&cfg))
		})
	}
}

// A run that ends early prints its error once: the counts line on stdout
// named the error, and the program printed it again on stderr
// (`queuegroup -request` with nobody serving printed "no responders"
// twice). Since the requester probes for the members' interest before its
// first request, such a run ends in the probe, before any request is sent.
func TestRunEndedEarlyErrorOnce(t *testing.T) {
	s := testserver.New(t)
	for _, demo := range []string{"share", "micro"} {
		t.Run(demo, func(t *testing.T) {
			cfg := DefaultConfig()
			fs, check := flags(&cfg)
			getenv := func(key string) string {
				if key == "NATS_URL" {
					return s.ClientURL()
				}
				return ""
			}
			var stdout, stderr bytes.Buffer
			run := func(ctx context.Context, env *cli.Env) error { return Run(ctx, env, cfg, &stdout) }
			code := cli.Exec(fs, []string{"-request", "-demo", demo}, check, run, getenv, &stderr)
			assert.Equal(t, cli.ExitFailure, code)
			assert.NotContains(t, stdout.String(), "verified")
			all := stdout.String() + stderr.String()
			assert.Equal(t, 1, strings.Count(all, "no responders"), "the error once:\n%s", all)
		})
	}
}

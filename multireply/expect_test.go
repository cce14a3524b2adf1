package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/multireply/variants"
)

// -expect on one server: five micro service instances are discovered, and
// the gather ends at the last expected answer, not at the deadline; with
// -kill 1 the first instance stops after discovery and the gather, which
// then waits out its deadline, names it.
func TestRunExpect(t *testing.T) {
	tests := []struct {
		name   string
		kill   int
		want   []string
		reason string
	}{
		{name: "all answer", want: []string{"discovered 5 instances of greeter", "5 replies, stopped: all expected answered"}},
		{name: "one killed", kill: 1, want: []string{"killed instance-1 (id ", "4 replies, stopped: deadline", "missing: instance-1 (id "}},
	}
	for _, tc := range tests {
		for _, variant := range variants.Names {
			t.Run(tc.name+"/variant="+variant, func(t *testing.T) {
				var out bytes.Buffer
				cfg := Config{Responders: 5, Timeout: time.Second, Variant: variant, Delay: 50 * time.Millisecond, Seed: 1, Expect: true, Kill: tc.kill}
				require.NoError(t, cfg.Check())
				require.NoError(t, Run(context.Background(), newEnv(t), cfg, &out))
				for _, w := range tc.want {
					assert.Contains(t, out.String(), w)
				}
			})
		}
	}
}

// -expect on a 3-node cluster, the measurement of issue 19: five
// instances spread over the nodes, the requester on another node than the
// first instance's, a 2 s deadline. The gather ends at the last expected
// answer; with one instance killed, it names it.
func TestExpectOnCluster(t *testing.T) {
	for _, kill := range []string{"0", "1"} {
		for _, variant := range variants.Names {
			t.Run("kill="+kill+"/variant="+variant, func(t *testing.T) {
				code, stdout, stderr := program([]string{"-cluster", "3", "-expect", "-responders", "5", "-timeout", "2s", "-kill", kill, "-variant", variant}, nil)
				require.Equal(t, cli.ExitOK, code, "%s\n%s", stdout, stderr)
				if kill == "0" {
					assert.Contains(t, stdout, "5 replies, stopped: all expected answered")
					assert.NotContains(t, stdout, "missing:")
					return
				}
				assert.Contains(t, stdout, "4 replies, stopped: deadline at ")
				assert.Equal(t, 1, strings.Count(stdout, "missing: instance-1 (id "), stdout)
			})
		}
	}
}

// Tests of the output helpers: Round's trimming, and the "nodes:" lines,
// written on several nodes only.

package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/testserver"
)

func TestRound(t *testing.T) {
	tests := []struct {
		in, want time.Duration
	}{
		{in: 27_400 * time.Nanosecond, want: 27 * time.Microsecond},
		{in: 312_456 * time.Nanosecond, want: 312 * time.Microsecond},
		{in: 1_234_567 * time.Nanosecond, want: 1_230 * time.Microsecond},
		{in: 2_000_731 * time.Microsecond, want: 2_001 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.in.String(), func(t *testing.T) {
			assert.Equal(t, tc.want, Round(tc.in))
		})
	}
}

// The "nodes:" lines: written when the Env has several nodes (NATS_URL
// listing several servers), not on one.
func TestWriteNodes(t *testing.T) {
	s := testserver.New(t, testserver.WithServerName("node-2"))
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	type member struct{ name, node string }
	members := []member{{"worker-1", "node-1"}, {"worker-2", "node-2"}}
	placed := func(m member) string { return m.name + " on " + m.node }
	tests := []struct {
		name      string
		url       string
		multi     bool
		parts     []string
		nodes     string // what WriteNodes writes
		placement string // what WritePlacement writes
	}{
		{name: "one node", url: s.ClientURL(), parts: []string{"greeter on node-1"}},
		{name: "two nodes", url: "nats://127.0.0.1:4222,nats://127.0.0.1:4223", multi: true,
			parts:     []string{"greeter on node-1", "requester on node-2"},
			nodes:     "nodes: greeter on node-1, requester on node-2\n",
			placement: "nodes: worker-1 on node-1, worker-2 on node-2; requester on node-2\n"},
		{name: "two nodes, no parts", url: "nats://127.0.0.1:4222,nats://127.0.0.1:4223", multi: true,
			placement: "nodes: worker-1 on node-1, worker-2 on node-2; requester on node-2\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := NewEnv("prog", tc.url)
			assert.Equal(t, tc.multi, env.MultiNode())
			var out bytes.Buffer
			WriteNodes(&out, env, tc.parts...)
			assert.Equal(t, tc.nodes, out.String())
			out.Reset()
			WritePlacement(&out, env, nc, members, placed)
			assert.Equal(t, tc.placement, out.String())
		})
	}
}

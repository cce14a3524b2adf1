package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/testserver"
)

// TestTopologyFlag: -cluster takes 1..MaxClusterNodes, anything else is a
// usage error (exit 2) before anything starts.
func TestTopologyFlag(t *testing.T) {
	tests := []struct {
		value string
		ok    bool
		kind  Kind
	}{
		{"1", true, Single}, {"2", true, Cluster}, {"5", true, Cluster},
		{"0", false, Single}, {"6", false, Single}, {"-1", false, Single}, {"three", false, Single}, {"", false, Single},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			var topo Topology
			err := topo.Set(tc.value)
			if !tc.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.kind, topo.Kind)
			assert.Equal(t, tc.value, topo.String())
		})
	}
}

// TestExecCluster runs a program through Exec with -cluster: an embedded
// cluster of that many nodes, announced in one line; each role's
// connection sits on its node and says so; -cluster with NATS_URL set, or
// out of range, is a usage error.
func TestExecCluster(t *testing.T) {
	s := testserver.New(t)
	tests := []struct {
		name     string
		args     []string
		url      string
		wantCode int
		wantErr  *regexp.Regexp
	}{
		{name: "cluster of 3", args: []string{"-cluster", "3"}, wantCode: ExitOK,
			wantErr: regexp.MustCompile(`(?m)^prog: NATS_URL is unset; using an embedded cluster of 3 nodes: node-1 nats://127\.0\.0\.1:\d+, node-2 .*\n(.*\n)*prog responder-2: connected to node-2 at nats://`)},
		{name: "cluster of 1", args: []string{"-cluster", "1"}, wantCode: ExitOK, wantErr: regexp.MustCompile(`embedded nats-server at`)},
		{name: "too many nodes", args: []string{"-cluster", "6"}, wantCode: ExitUsage, wantErr: regexp.MustCompile(`-cluster.*1\.\.5`)},
		{name: "with NATS_URL", args: []string{"-cluster", "3"}, url: s.ClientURL(), wantCode: ExitUsage, wantErr: regexp.MustCompile(`with NATS_URL set`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("prog", flag.ContinueOnError)
			var stderr bytes.Buffer
			run := func(ctx context.Context, e *Env) error {
				nodes := e.Nodes()
				for i := range 3 {
					nc, err := e.ConnectNode("responder-"+string(rune('1'+i)), e.ResponderNode(i))
					if err != nil {
						return err
					}
					if len(nodes) > 1 {
						assert.Equal(t, nodes[e.ResponderNode(i)].Name, ServerName(nc))
					}
				}
				nc, err := e.ConnectNode("requester", e.RequesterNode())
				if err != nil {
					return err
				}
				if len(nodes) > 1 {
					assert.NotEqual(t, nodes[e.ResponderNode(0)].Name, ServerName(nc))
				}
				return nil
			}
			code := Exec(fs, tc.args, nil, run, env(tc.url, tc.url == ""), &stderr)
			assert.Equal(t, tc.wantCode, code, stderr.String())
			assert.Regexp(t, tc.wantErr, stderr.String())
		})
	}
}

// TestEmbeddedTopologies: each kind forms and names its nodes; Close stops
// every server.
func TestEmbeddedTopologies(t *testing.T) {
	tests := []struct {
		topo  Topology
		names []string
	}{
		{Topology{Kind: Single}, []string{"node-1"}},
		{Topology{Kind: Cluster, Nodes: 2}, []string{"node-1", "node-2"}},
		{Topology{Kind: Leaf}, []string{"hub", "leaf"}},
		{Topology{Kind: Supercluster}, []string{"east-1", "east-2", "west-1", "west-2"}},
	}
	for _, tc := range tests {
		t.Run(tc.topo.describe(), func(t *testing.T) {
			e, err := EmbeddedTopology("prog", tc.topo)
			require.NoError(t, err)
			var got []string
			for _, n := range e.Nodes() {
				got = append(got, n.Name)
			}
			assert.Equal(t, tc.names, got)
			servers := e.Servers()
			require.Len(t, servers, len(tc.names))
			require.NoError(t, e.Close())
			for _, s := range servers {
				assert.False(t, s.Running())
			}
		})
	}
}

// TestNodesFromURL: with NATS_URL's servers, one node per URL, named by
// host:port, and the credentials never shown.
func TestNodesFromURL(t *testing.T) {
	e := NewEnv("prog", "nats://a:1, nats://joe:secret@b:2")
	nodes := e.Nodes()
	require.Len(t, nodes, 2)
	assert.Equal(t, "a:1", nodes[0].Name)
	assert.Equal(t, "b:2", nodes[1].Name)
	assert.NotContains(t, nodes[1].Name, "secret")
	assert.Equal(t, 1, e.RequesterNode())
	assert.Equal(t, 0, e.ResponderNode(2))
}

// TestPlacementAnnouncedOnce: a role's connection to a node is announced
// once, however often the role connects there again (tail starts fresh
// members for every row: on a cluster of 3 its default run printed 81
// such lines); a new role or another node is announced.
func TestPlacementAnnouncedOnce(t *testing.T) {
	e, err := EmbeddedTopology("prog", Topology{Kind: Cluster, Nodes: 3})
	require.NoError(t, err)
	var stderr syncBuffer
	e.Stderr = &stderr
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	tests := []struct {
		role string
		node int
		want string // the line announced, "" for none
	}{
		{role: "member-1", node: 0, want: "prog member-1: connected to node-1 at nats://"},
		{role: "member-1", node: 0},
		{role: "member-2", node: 0, want: "prog member-2: connected to node-1 at nats://"},
		{role: "member-1", node: 1, want: "prog member-1: connected to node-2 at nats://"},
		{role: "member-1", node: 3}, // node 3 is node-1 again (modulo)
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%d %s on %d", i, tc.role, tc.node), func(t *testing.T) {
			before := stderr.String()
			nc, err := e.ConnectNode(tc.role, tc.node)
			require.NoError(t, err)
			nc.Close()
			got := strings.TrimPrefix(stderr.String(), before)
			if tc.want == "" {
				assert.Empty(t, got)
				return
			}
			assert.Contains(t, got, tc.want)
			assert.Equal(t, 1, strings.Count(got, "\n"), got)
		})
	}
}

// TestClusterRefusesCredentials: an embedded topology has no users, so the
// environment's server and credentials (NATS_CONTEXT, NATS_USER, NATS_TOKEN,
// NATS_CREDS, NATS_INBOX_PREFIX, ...) cannot apply to it: like one embedded
// server, -cluster refuses them (exit 2, one line naming the variable)
// before any server starts, instead of dropping them silently.
func TestClusterRefusesCredentials(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		want string
	}{
		{name: "context", vars: map[string]string{"NATS_CONTEXT": "prod"}, want: "NATS_CONTEXT"},
		{name: "user and password", vars: map[string]string{"NATS_USER": "bob", "NATS_PASSWORD": "pwSECRET"}, want: "NATS_USER"},
		{name: "token", vars: map[string]string{"NATS_TOKEN": "tokSECRET"}, want: "NATS_TOKEN"},
		{name: "creds", vars: map[string]string{"NATS_CREDS": "/nonexistent.creds"}, want: "NATS_CREDS"},
		{name: "inbox prefix", vars: map[string]string{"NATS_INBOX_PREFIX": "_INBOX_requester"}, want: "NATS_INBOX_PREFIX"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("prog", flag.ContinueOnError)
			var stderr bytes.Buffer
			ran := false
			run := func(context.Context, *Env) error { ran = true; return nil }
			code := Exec(fs, []string{"-cluster", "2"}, nil, run, func(k string) string { return tc.vars[k] }, &stderr)
			assert.Equal(t, ExitUsage, code, stderr.String())
			assert.False(t, ran, "the run must not start")
			assert.Regexp(t, `^prog: .*`+tc.want+`.* \(run with -h for usage\)\n$`, stderr.String())
			assert.NotContains(t, stderr.String(), "embedded cluster of 2 nodes:", "no cluster may start")
			assert.NotContains(t, stderr.String(), "SECRET")
		})
	}
}

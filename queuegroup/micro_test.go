package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

// instanceIDs returns the instances' micro ids.
func instanceIDs(instances []*Instance) []string {
	var ids []string
	for _, in := range instances {
		ids = append(ids, in.ID())
	}
	return ids
}

// TestMicroStatsEveryInstance guards a past fault: `-demo micro -request` read
// $SRV.STATS only until -workers instances had answered. Two -serve
// programs run 3 and 2 instances, whose names clash (each has an
// instance-1 and an instance-2); a -request with -workers 1 must list all
// five, told apart by micro id.
func TestMicroStatsEveryInstance(t *testing.T) {
	s, env := newServerEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serving := make(chan error, 2)
	for _, workers := range []int{3, 2} {
		go func() {
			cfg := DefaultConfig()
			cfg.Demo, cfg.Mode.Serve, cfg.Workers = DemoMicro, true, workers
			serving <- Run(ctx, env, cfg, &bytes.Buffer{})
		}()
	}
	require.NoError(t, testserver.WaitForSubscribers(s, MicroSubject, 5))

	cfg := DefaultConfig()
	cfg.Demo, cfg.Mode.Request, cfg.Workers = DemoMicro, true, 1
	var out bytes.Buffer
	require.NoError(t, Run(context.Background(), env, cfg, &out))
	assert.Contains(t, out.String(), "$SRV.STATS.queuegroup, answered by 5 instances")
	assert.Equal(t, 2, strings.Count(out.String(), "  instance-1 (id "), out.String())
	assert.Equal(t, 2, strings.Count(out.String(), "  instance-2 (id "), out.String())
	cancel()
	require.NoError(t, <-serving)
	require.NoError(t, <-serving)
}

// TestReadStatsExpect: with the ids it expects, ReadStats returns as soon
// as those have answered, with their stats under their ids.
func TestReadStatsExpect(t *testing.T) {
	env := newEnv(t)
	var instances []*Instance
	for _, name := range []string{"instance-1", "instance-2"} {
		in, err := startInstance(env, 0, name, 0)
		require.NoError(t, err)
		instances = append(instances, in)
	}
	defer func() {
		for _, in := range instances {
			assert.NoError(t, in.Stop())
		}
	}()
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	stats, err := ReadStats(context.Background(), nc, instanceIDs(instances), cli.SetupTimeout(0))
	require.NoError(t, err)
	require.Len(t, stats, 2)
	assert.ElementsMatch(t, instanceIDs(instances), []string{stats[0].ID, stats[1].ID})
}

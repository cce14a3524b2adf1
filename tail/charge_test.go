// -demo charge on a small load: with the key in a bucket no request is
// charged twice and every answered one exactly once, by the handler's own
// ledger; the table has its three rows. Latencies are not asserted.

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/hedge"
	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

// TestChargeOnce runs the KV row, member-1 dying with requests in hand,
// and checks it against the ledger.
func TestChargeOnce(t *testing.T) {
	s := testserver.New(t, testserver.JetStream(t))
	env := cli.NewEnv("tail", s.ClientURL())
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := longCtx(t)
	_, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: ChargeBucket, TTL: time.Minute})
	require.NoError(t, err)
	cfg := DefaultConfig()
	cfg.Requests, cfg.Timeout = 300, time.Second
	p := hedge.Policy{Hedge: hedge.Hedge{Delay: time.Millisecond}, Retry: &hedge.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempt: 50 * time.Millisecond}}
	row, err := chargeRow(ctx, env, nc, cfg, p, "kv")
	require.NoError(t, err)
	assert.Equal(t, cfg.Requests, row.Once+row.Twice+row.Never)
	assert.Zero(t, row.Twice, "a request was charged twice")
	assert.Zero(t, row.AnsweredNotOnce, "an answered request was not charged exactly once")
	assert.True(t, row.Verified())
	assert.Equal(t, cfg.Requests, row.Answered+row.Unknown+row.TimedOut+row.Failed)
	assert.Positive(t, row.Answered)
}

// TestChargeRowEndsHoldingFewer: member 1 (here the only one) holds the
// requests it takes after its first, and dies once it holds ChargeHeld;
// with 2 requests and no hedge or retry it holds just one when the load
// ends. The row still ends: the held charge goes through, once, and its
// request timed out (a small -requests once hung the demo here).
func TestChargeRowEndsHoldingFewer(t *testing.T) {
	s := testserver.New(t, testserver.JetStream(t))
	env := cli.NewEnv("tail", s.ClientURL())
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	nc, err := env.Connect("requester")
	require.NoError(t, err)
	cfg := DefaultConfig()
	cfg.Members, cfg.Requests, cfg.Concurrency = 1, 2, 1
	row, err := chargeRow(longCtx(t), env, nc, cfg, hedge.Policy{}, "none")
	require.NoError(t, err)
	assert.Equal(t, 2, row.Once, "each request charged once, the held one when member 1 died")
	assert.Equal(t, 1, row.Answered)
	assert.Equal(t, 1, row.TimedOut)
}

// TestChargeTable runs the whole demo on a tiny load: three rows, in order.
func TestChargeTable(t *testing.T) {
	s := testserver.New(t, testserver.JetStream(t))
	env := cli.NewEnv("tail", s.ClientURL())
	t.Cleanup(func() { require.NoError(t, env.Close()) })
	cfg := DefaultConfig()
	cfg.Demo, cfg.Requests, cfg.Timeout = DemoCharge, 60, time.Second
	var out bytes.Buffer
	require.NoError(t, Run(context.Background(), env, cfg, &out, nil))
	var rows []string
	for line := range strings.Lines(out.String()) {
		for _, name := range []string{"no key", "key, each member's memory", "key, KV bucket R1"} {
			if strings.HasPrefix(line, name+" ") {
				rows = append(rows, name)
			}
		}
	}
	assert.Equal(t, []string{"no key", "key, each member's memory", "key, KV bucket R1"}, rows, out.String())
}

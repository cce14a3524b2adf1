package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

// TestConfigCheck covers the argument checks: every bad value is a usage
// error (exit 2), never a panic or a hang.
func TestConfigCheck(t *testing.T) {
	with := func(change func(*Config)) Config {
		cfg := DefaultConfig()
		change(&cfg)
		return cfg
	}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{name: "defaults", cfg: DefaultConfig(), ok: true},
		{name: "every demo", cfg: with(func(c *Config) { c.Demo = DemoMicro }), ok: true},
		{name: "more in flight than requests", cfg: with(func(c *Config) { c.Concurrency = 100 }), ok: true},
		{name: "one worker", cfg: with(func(c *Config) { c.Workers = 1 }), ok: true},
		{name: "slow below timeout", cfg: with(func(c *Config) { c.Slow = 999 * time.Millisecond }), ok: true},
		{name: "serve micro", cfg: with(func(c *Config) { c.Demo, c.Mode.Serve = DemoMicro, true }), ok: true},
		{name: "request share", cfg: with(func(c *Config) { c.Mode.Request = true }), ok: true},
		{name: "unknown demo", cfg: with(func(c *Config) { c.Demo = "dance" })},
		{name: "empty demo", cfg: with(func(c *Config) { c.Demo = "" })},
		{name: "zero workers", cfg: with(func(c *Config) { c.Workers = 0 })},
		{name: "negative workers", cfg: with(func(c *Config) { c.Workers = -3 })},
		{name: "too many workers", cfg: with(func(c *Config) { c.Workers = MaxWorkers + 1 })},
		{name: "drain needs two workers", cfg: with(func(c *Config) { c.Demo, c.Workers = DemoDrain, 1 })},
		{name: "die needs two workers", cfg: with(func(c *Config) { c.Demo, c.Workers = DemoDie, 1 })},
		{name: "zero requests", cfg: with(func(c *Config) { c.Requests = 0 })},
		{name: "negative requests", cfg: with(func(c *Config) { c.Requests = -1 })},
		{name: "too many requests", cfg: with(func(c *Config) { c.Requests = MaxRequests + 1 })},
		{name: "scale needs three requests", cfg: with(func(c *Config) { c.Demo, c.Requests = DemoScale, 2 })},
		{name: "zero concurrency", cfg: with(func(c *Config) { c.Concurrency = 0 })},
		{name: "too much concurrency", cfg: with(func(c *Config) { c.Concurrency = MaxConcurrency + 1 })},
		{name: "zero timeout", cfg: with(func(c *Config) { c.Timeout = 0 })},
		{name: "negative timeout", cfg: with(func(c *Config) { c.Timeout = -time.Second })},
		{name: "negative slow", cfg: with(func(c *Config) { c.Slow = -time.Millisecond })},
		{name: "slow as long as the timeout", cfg: with(func(c *Config) { c.Slow = time.Second })},
		{name: "slow demo's default slowness over the timeout", cfg: with(func(c *Config) { c.Demo, c.Timeout = DemoSlow, 5*time.Millisecond })},
		{name: "serve and request", cfg: with(func(c *Config) { c.Mode = cli.Mode{Serve: true, Request: true} })},
		{name: "serve a demo that needs both halves", cfg: with(func(c *Config) { c.Demo, c.Mode.Serve = DemoDrain, true })},
		{name: "request a demo that needs both halves", cfg: with(func(c *Config) { c.Demo, c.Mode.Request = DemoMixed, true })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Check()
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, cli.ErrUsage)
			// Run refuses it the same way, before connecting anywhere.
			assert.ErrorIs(t, Run(context.Background(), cli.NewEnv("queuegroup", "nats://127.0.0.1:1"), tc.cfg, &bytes.Buffer{}), cli.ErrUsage)
		})
	}
}

// TestRun plays every demo through Run, as the program does, and checks
// the lines that do not depend on chance or timing. Each demo verifies
// itself and returns an error wrapping ErrNotVerified when it sees a
// request lost or doubled where it expects none.
func TestRun(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*Config)
		want []string // lines the output must contain
	}{
		{name: "share", cfg: func(*Config) {}, want: []string{
			`queue group "workers" on "queuegroup.work": 3 members, 30 requests, 1 in flight, timeout 1s`,
			"verified: 30 requests, 30 replies: every request answered exactly once (0 lost, 0 duplicated)",
		}},
		{name: "share, 64 in flight, slow member", cfg: func(c *Config) {
			c.Requests, c.Concurrency, c.Slow = 300, 64, time.Millisecond
		}, want: []string{
			"worker-1 takes 1ms longer than the others per request",
			"verified: 300 requests, 300 replies",
		}},
		{name: "mixed", cfg: func(c *Config) { c.Demo, c.Concurrency = DemoMixed, 8 }, want: []string{
			"  listener-1 received 30 of 30",
			"  listener-2 received 30 of 30",
			"verified: 30 requests, 60 replies: every request answered exactly 2 times, once per group (0 lost, 0 duplicated)",
		}},
		{name: "drain", cfg: func(c *Config) { c.Demo, c.Requests, c.Concurrency = DemoDrain, 300, 16 }, want: []string{
			"worker-1 drains (its connection's Drain) just before request 101 is sent",
			"verified: 300 requests, 300 replies",
		}},
		{name: "scale", cfg: func(c *Config) { c.Demo, c.Requests, c.Concurrency = DemoScale, 300, 16 }, want: []string{
			"worker-4 joins just before request 101 is sent",
			"verified: 300 requests, 300 replies",
		}},
		{name: "die, retry", cfg: func(c *Config) {
			// 1 s, not less: on a loaded machine a healthy request must not
			// time out too, or the counts below would depend on scheduling.
			c.Demo, c.Requests, c.Timeout, c.Retry = DemoDie, 300, time.Second, true
		}, want: []string{
			"worker-1 died holding 1 request: no reply within 1s",
			"retry: re-sent 1 timed-out request once: 1 answered by the members left",
			"verified: 300 requests, 300 replies: every request answered exactly once (0 lost, 0 duplicated, 1 after a retry)",
		}},
		{name: "slow", cfg: func(c *Config) { c.Demo, c.Slow, c.Requests = DemoSlow, time.Millisecond, 20 }, want: []string{
			"worker-1 takes 1ms longer per request than the others; 20 requests per row, timeout 1s",
		}},
		{name: "micro", cfg: func(c *Config) { c.Demo, c.Requests, c.Concurrency = DemoMicro, 90, 16 }, want: []string{
			`micro service "queuegroup", endpoint "work" on "queuegroup.micro" in queue group "q": 3 instances, 90 requests, 16 in flight`,
			"$SRV.STATS.queuegroup, answered by 3 instances:",
			"verified: 90 requests, 90 replies",
			"$SRV.STATS agrees: the instances counted 90 requests, as many as each one's replies show",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, env := newServerEnv(t)
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			// In the die demo, retries wait until the server has dropped
			// the dead member (one of the 3 workers' subscriptions gone).
			cfg.afterDeath = func(context.Context) error {
				require.NoError(t, testserver.WaitForSubscribers(s, Subject, cfg.Workers-1))
				return nil
			}
			var out bytes.Buffer
			require.NoError(t, Run(context.Background(), env, cfg, &out))
			for _, line := range tc.want {
				assert.Contains(t, out.String(), line)
			}
			assert.NotContains(t, out.String(), "NOT")
		})
	}
}

// TestRunSlowRows checks the slow demo's table has a row per set-up.
func TestRunSlowRows(t *testing.T) {
	env := newEnv(t)
	cfg := DefaultConfig()
	cfg.Demo, cfg.Slow, cfg.Requests = DemoSlow, time.Millisecond, 20
	var out bytes.Buffer
	require.NoError(t, Run(context.Background(), env, cfg, &out))
	var rows []string
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 2 && (f[0] == "3" || f[0] == "6") {
			rows = append(rows, f[0]+" "+f[1])
		}
	}
	assert.Equal(t, []string{"3 1", "3 16", "6 1", "6 16"}, rows)
}

// TestRunRequestNobodyServes: -request with no members anywhere fails fast
// with no responders.
func TestRunRequestNobodyServes(t *testing.T) {
	for _, demo := range []Demo{DemoShare, DemoMicro} {
		t.Run(string(demo), func(t *testing.T) {
			env := newEnv(t)
			cfg := DefaultConfig()
			cfg.Demo, cfg.Mode.Request, cfg.Timeout = demo, true, time.Minute
			err := Run(context.Background(), env, cfg, &bytes.Buffer{})
			assert.ErrorIs(t, err, nats.ErrNoResponders)
		})
	}
}

// TestRunServeThenRequest runs the two halves as two programs would, on one
// server: -serve until cancelled, and -request against it.
func TestRunServeThenRequest(t *testing.T) {
	tests := []struct {
		demo    Demo
		subject string
		want    []string
	}{
		{DemoShare, Subject, []string{
			`requests on "queuegroup.work" to members running elsewhere: 30 requests, 1 in flight, timeout 1s`,
			"verified: 30 requests, 30 replies",
		}},
		{DemoMicro, MicroSubject, []string{
			"$SRV.STATS.queuegroup, answered by 3 instances (counts since each instance started, readiness probes included):",
			"verified: 30 requests, 30 replies",
		}},
	}
	for _, tc := range tests {
		t.Run(string(tc.demo), func(t *testing.T) {
			s, env := newServerEnv(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			serving := make(chan error, 1)
			var served bytes.Buffer
			go func() {
				cfg := DefaultConfig()
				cfg.Demo, cfg.Mode.Serve = tc.demo, true
				serving <- Run(ctx, env, cfg, &served)
			}()
			require.NoError(t, testserver.WaitForSubscribers(s, tc.subject, DefaultWorkers))

			cfg := DefaultConfig()
			cfg.Demo, cfg.Mode.Request = tc.demo, true
			var out bytes.Buffer
			require.NoError(t, Run(context.Background(), env, cfg, &out))
			for _, line := range tc.want {
				assert.Contains(t, out.String(), line)
			}
			cancel()
			require.NoError(t, <-serving)
			assert.Contains(t, served.String(), "until interrupted")
		})
	}
}

// TestMicroStats reads $SRV.STATS directly: every instance answers, in
// micro's default queue group, and their counts add up to the requests.
func TestMicroStats(t *testing.T) {
	env := newEnv(t)
	var instances []*Instance
	for _, name := range []string{"instance-1", "instance-2", "instance-3"} {
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
	res, err := Load(context.Background(), nc, LoadConfig{
		Subject: MicroSubject, Requests: 60, Concurrency: 8, Timeout: 5 * time.Second,
		Settle: func(ctx context.Context) error {
			for _, in := range instances {
				if err := in.settle(ctx); err != nil {
					return err
				}
			}
			return nil
		},
	})
	require.NoError(t, err)
	require.True(t, res.Exact())

	stats, err := ReadStats(context.Background(), nc, instanceIDs(instances), 5*time.Second)
	require.NoError(t, err)
	require.Len(t, stats, 3)
	total := 0
	for i, st := range stats {
		assert.Equal(t, instances[i].Name, st.Name)
		assert.Equal(t, MicroEndpoint, st.Endpoint.Name)
		assert.Equal(t, micro.DefaultQueueGroup, st.Endpoint.QueueGroup)
		assert.Equal(t, countOf(res, st.Name), st.Endpoint.NumRequests)
		total += st.Endpoint.NumRequests
	}
	assert.Equal(t, 60, total)
}

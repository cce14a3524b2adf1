package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig is a short run: C's work (100 ms) is five times the caller's
// timeout (20 ms), and well under each service's own timeout (1 s).
var testConfig = Config{Requests: 3, Concurrency: 1, Timeout: 20 * time.Millisecond, Work: 100 * time.Millisecond, HopTimeout: time.Second}

// env starts an embedded server and an Env on it, closed at the end.
func env(t *testing.T) *cli.Env {
	t.Helper()
	s := testserver.New(t)
	e := cli.NewEnv("chain", s.ClientURL())
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

// TestChainStops: without the middleware every service works every request
// to its end (C's work is shorter than its own timeout); with it, C's
// context ends at the caller's deadline, which comes before its work can be
// done, so every request that reaches C is stopped there, or refused as
// expired on the way; no service misses a request. The limits are the
// clock's (the work's steps against the deadline), not the scheduler's.
func TestChainStops(t *testing.T) {
	for _, concurrency := range []int{1, 3} {
		t.Run(fmt.Sprint(concurrency, " in flight"), func(t *testing.T) {
			e := env(t)
			conns, err := connect(e)
			require.NoError(t, err)
			cfg := testConfig
			cfg.Concurrency = concurrency
			n := cfg.Requests

			without, err := runChain(context.Background(), conns, cfg, false)
			require.NoError(t, err)
			assert.Equal(t, [3]int{n, n, n}, without.Ran)
			assert.Equal(t, [3]int{}, without.Stopped)
			assert.Equal(t, [3]int{}, without.Refused)
			assert.Positive(t, without.Wasted[2], "C works on after the caller gave up")

			with, err := runChain(context.Background(), conns, cfg, true)
			require.NoError(t, err)
			assert.Equal(t, n, with.Ran[0]+with.Refused[0], "A takes every request")
			assert.Equal(t, with.Ran[2], with.Stopped[2], "every C run is stopped by its context")
			assert.Equal(t, with.Ran[1], with.Stopped[1], "every B run is stopped by its context, or by C's error reply")
		})
	}
}

// TestRun: the program's table, a row each without and with the
// middleware; the figures vary from run to run.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, Run(context.Background(), env(t), testConfig, &out))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 5, out.String())
	assert.Equal(t, "chain A → B → C: 3 requests, 1 in flight, each given up after 20ms; C works 100ms; without the middleware each service's own timeout is 1s", lines[0])
	assert.Regexp(t, `^without middleware +\d+ +\d+ +\d+ +\d+ +3 +0$`, lines[3])
	assert.Regexp(t, `^with middleware +\d+ +\d+ +\d+ +\d+ +\d+ +\d+$`, lines[4])
}

// TestFlags: bad values are refused before anything connects, with exit 2.
func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"-requests", "0"}, {"-concurrency", "0"}, {"-timeout", "0s"}, {"-work", "-1s"}, {"-hop-timeout", "0s"}, {"extra"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cfg := testConfig
			fs, check := flags(&cfg)
			var stderr bytes.Buffer
			code := cli.Exec(fs, args, check, func(context.Context, *cli.Env) error {
				t.Error("ran with bad flags")
				return nil
			}, func(string) string { return "" }, &stderr)
			assert.Equal(t, 2, code, stderr.String())
		})
	}
}

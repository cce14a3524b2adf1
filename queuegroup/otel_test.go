package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/cli/clitest"
	"reqreply/internal/telemetry/telemetrytest"
)

// TestMetricsWhileServing: `queuegroup -serve -metrics 127.0.0.1:0` serves
// Prometheus text while it runs, with the suite's metrics: after the
// requester half's 30 requests, the members' handling of them is counted in
// messaging_process_duration_seconds. The program runs in a child process
// (its global meter provider is its own), stopped by Ctrl-C.
func TestMetricsWhileServing(t *testing.T) {
	s, env := newServerEnv(t)
	cmd := clitest.Program(t, main, []string{"NATS_URL=" + s.ClientURL()}, "-serve", "-metrics", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr clitest.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	// The members are serving once the program says so; -metrics has
	// said where it serves before that.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, stderr.String())
	require.Contains(t, line, "until interrupted")
	url := telemetrytest.MetricsURL(t, stderr.String())

	cfg := DefaultConfig()
	cfg.Mode.Request = true
	var out bytes.Buffer
	require.NoError(t, Run(context.Background(), env, cfg, &out))
	require.Contains(t, out.String(), "verified: 30 requests, 30 replies")

	text := telemetrytest.Scrape(t, url)
	assert.Equal(t, cfg.Requests, sumSeries(t, text, "messaging_process_duration_seconds_count"), text)
	assert.Contains(t, text, `messaging_system="nats"`)
	assert.Contains(t, text, `le="5e-05"`, "buckets from 50 µs")

	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	require.NoError(t, cmd.Wait(), stderr.String())
	exited = true
	assert.Contains(t, stderr.String(), "queuegroup: interrupted; connections drained")
}

// sumSeries adds the values of every series of metric in Prometheus text.
func sumSeries(t *testing.T, text, metric string) int {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(metric) + `(\{[^}]*\})? (\S+)$`)
	sum := 0
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		require.NoError(t, err, m[0])
		sum += int(v)
	}
	require.NotZero(t, strings.Count(text, metric), "no %s in:\n%s", metric, text)
	return sum
}

package cli

import (
	"context"
	"flag"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/internal/telemetry"
	"reqreply/internal/telemetry/telemetrytest"
	"reqreply/internal/testserver"
)

// TestMetricsFlag: every program has -metrics; with it the run's metrics
// are served while it runs, announced in one line, and closed at its end;
// a bad ADDR, or an OTEL_TRACES_EXPORTER that names no exporter, is one
// line and exit 2, before any run.
func TestMetricsFlag(t *testing.T) {
	s := testserver.New(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	tests := []struct {
		name   string
		args   []string
		traces string // OTEL_TRACES_EXPORTER
		want   string // the one usage line's text; "" for a run
	}{
		{name: "serves", args: []string{"-metrics", "127.0.0.1:0"}},
		{name: "off", args: nil},
		{name: "no port", args: []string{"-metrics", "localhost"}, want: "bad -metrics address"},
		{name: "a url", args: []string{"-metrics", "http://127.0.0.1:9464"}, want: "bad -metrics address"},
		{name: "busy", args: []string{"-metrics", busy.Addr().String()}, want: "address already in use"},
		{name: "no exporter", traces: "jaeger-thrift", want: "OTEL_TRACES_EXPORTER=jaeger-thrift"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(telemetry.EnvTraces, tc.traces)
			t.Setenv(telemetry.EnvMetrics, "")
			var stderr syncBuffer
			ran := false
			var url, text string
			run := func(_ context.Context, e *Env) error {
				ran = true
				if len(tc.args) == 0 {
					assert.NotContains(t, stderr.String(), "metrics")
					return nil
				}
				url = telemetrytest.MetricsURL(t, stderr.String())
				text = telemetrytest.Scrape(t, url)
				return nil
			}
			fs := flag.NewFlagSet("prog", flag.ContinueOnError)
			code := Exec(fs, tc.args, nil, run, env(s.ClientURL(), false), &stderr)
			out := stderr.String()
			if tc.want != "" {
				assert.Equal(t, ExitUsage, code)
				assert.False(t, ran)
				assert.Contains(t, out, tc.want)
				assert.Equal(t, 1, strings.Count(out, "\n"), "one line: %s", out)
				return
			}
			assert.Equal(t, ExitOK, code, out)
			assert.True(t, ran)
			if len(tc.args) == 0 {
				return
			}
			assert.Regexp(t, regexp.MustCompile(`^prog: serving metrics at http://127\.0\.0\.1:\d+/metrics\n$`), out)
			assert.Contains(t, text, `target_info{service_name="prog"`)
			_, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(url)
			assert.Error(t, err, "closed at the end of the run")
		})
	}
}

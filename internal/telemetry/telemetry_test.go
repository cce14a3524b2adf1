package telemetry

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.uber.org/goleak"

	"reqreply/internal/telemetry/telemetrytest"
)

// TestMain checks for leaked goroutines, but for the connection that the
// OTLP HTTP exporter keeps to the collector after TestJaeger: its transport
// is otlptracehttp's own package variable, whose idle connections nothing
// closes (a program exits with it).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
}

// clearEnv unsets every variable Start reads, for this test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{EnvTraces, EnvMetrics, EnvDisabled, "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
}

// TestStartOff: unset, empty, none and OTEL_SDK_DISABLED set nothing: the
// global providers stay what they were (the no-op ones in a program), and
// autoexport's default (otlp) is not made.
func TestStartOff(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{name: "unset"},
		{name: "none", env: map[string]string{EnvTraces: "none", EnvMetrics: "none"}},
		{name: "blank", env: map[string]string{EnvTraces: " "}},
		{name: "sdk disabled", env: map[string]string{EnvTraces: "console", EnvMetrics: "console", EnvDisabled: "true"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			tp, mp, prop := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator()
			tel, err := Start(context.Background(), "test", "")
			require.NoError(t, err)
			assert.False(t, tel.Tracing())
			assert.False(t, tel.Metrics())
			assert.Empty(t, tel.MetricsURL)
			assert.Equal(t, tp, otel.GetTracerProvider())
			assert.Equal(t, mp, otel.GetMeterProvider())
			assert.Equal(t, prop, otel.GetTextMapPropagator())
			assert.NoError(t, tel.Shutdown(context.Background()))
		})
	}
}

// helperEnv, set in a child process's environment, makes TestConsole play
// the program: the console exporter writes to the os.Stdout the process
// started with, so the test reads a child's.
const helperEnv = "REQREPLY_TELEMETRY_HELPER"

// TestConsole: OTEL_TRACES_EXPORTER=console prints each span, with its
// trace ID and the service name, on stdout when Shutdown flushes; the
// propagator is W3C tracecontext + baggage.
func TestConsole(t *testing.T) {
	if os.Getenv(helperEnv) == "console" {
		os.Exit(consoleChild())
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestConsole$")
	cmd.Env = append(os.Environ(), helperEnv+"=console", EnvTraces+"=console", EnvMetrics+"=", EnvDisabled+"=", "OTEL_SERVICE_NAME=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	lines := strings.SplitN(string(out), "\n", 2)
	require.Len(t, lines, 2, string(out))
	traceID := strings.TrimPrefix(lines[0], "trace ")
	assert.Contains(t, lines[1], `"Name":"gather greet.all"`)
	assert.Contains(t, lines[1], `"TraceID":"`+traceID+`"`)
	assert.Contains(t, lines[1], `"Value":"telemetry-test"`)
}

// consoleChild is TestConsole's program: it starts telemetry, ends one
// span, prints its trace ID on a line, and shuts down (the span follows).
func consoleChild() int {
	tel, err := Start(context.Background(), "telemetry-test", "")
	if err != nil || !tel.Tracing() || tel.Metrics() {
		fmt.Fprintln(os.Stderr, "start:", err, tel)
		return 1
	}
	// A composite propagator lists its fields from a map: in any order.
	if f := slices.Sorted(slices.Values(otel.GetTextMapPropagator().Fields())); !slices.Equal(f, []string{"baggage", "traceparent", "tracestate"}) {
		fmt.Fprintln(os.Stderr, "propagator fields:", f)
		return 1
	}
	_, span := otel.Tracer("test").Start(context.Background(), "gather greet.all")
	fmt.Println("trace", span.SpanContext().TraceID())
	span.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "shutdown:", err)
		return 1
	}
	return 0
}

// TestMetricsEndpoint: -metrics serves Prometheus text on ADDR/metrics
// while the program runs, and nothing after Shutdown.
func TestMetricsEndpoint(t *testing.T) {
	clearEnv(t)
	tel, err := Start(context.Background(), "telemetry-test", "127.0.0.1:0")
	require.NoError(t, err)
	assert.False(t, tel.Tracing())
	assert.True(t, tel.Metrics())
	require.NotEmpty(t, tel.MetricsURL)
	counter, err := otel.Meter("test").Int64Counter("reqreply.test.requests")
	require.NoError(t, err)
	counter.Add(context.Background(), 3)
	text := telemetrytest.Scrape(t, tel.MetricsURL)
	assert.Contains(t, text, "reqreply_test_requests_total 3")
	assert.Contains(t, text, `service_name="telemetry-test"`) // target_info
	require.NoError(t, tel.Shutdown(context.Background()))
	_, err = http.Get(tel.MetricsURL)
	assert.Error(t, err, "the endpoint is closed")
}

// TestStartRefused: a -metrics address that is not host:port or cannot be
// listened on, and an exporter autoexport does not know, fail Start with
// ErrBadAddr or ErrBadEnv, leaving nothing listening or set.
func TestStartRefused(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	tests := []struct {
		name string
		addr string
		env  map[string]string
		want error
	}{
		{name: "no port", addr: "127.0.0.1", want: ErrBadAddr},
		{name: "url", addr: "http://127.0.0.1:9464/metrics", want: ErrBadAddr},
		{name: "port out of range", addr: "127.0.0.1:70000", want: ErrBadAddr},
		{name: "port in use", addr: busy.Addr().String(), want: ErrBadAddr},
		{name: "unknown traces exporter", env: map[string]string{EnvTraces: "zipkin-ish"}, want: ErrBadEnv},
		{name: "unknown metrics exporter", addr: "127.0.0.1:0", env: map[string]string{EnvMetrics: "nope"}, want: ErrBadEnv},
		{name: "bad otlp protocol", env: map[string]string{EnvTraces: "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}, want: ErrBadEnv},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			tp := otel.GetTracerProvider()
			tel, err := Start(context.Background(), "test", tc.addr)
			require.ErrorIs(t, err, tc.want)
			assert.Nil(t, tel)
			assert.Equal(t, tp, otel.GetTracerProvider())
		})
	}
}

// Package telemetry turns on OpenTelemetry for a program, once at its
// start, the way every OpenTelemetry-instrumented program does: from the
// standard OTEL_* environment variables (read by
// go.opentelemetry.io/contrib/exporters/autoexport), plus a Prometheus
// endpoint for the -metrics flag. internal/cli calls Start for every
// program; the programs themselves only use package otelnats, whose spans
// and metrics go to the global providers Start sets, or to the no-op ones
// when it sets none.
//
// Traces: OTEL_TRACES_EXPORTER=console writes the spans as JSON on stdout
// (the console exporter's own writer), otlp sends them to
// OTEL_EXPORTER_OTLP_ENDPOINT (http/protobuf unless
// OTEL_EXPORTER_OTLP_PROTOCOL=grpc), none or unset sends nothing.
// autoexport's own default when the variable is unset is otlp; Start
// overrides that: unset is off. Metrics: -metrics ADDR serves Prometheus
// text on http://ADDR/metrics; OTEL_METRICS_EXPORTER (console, otlp,
// prometheus) works as for traces, unset off. OTEL_SDK_DISABLED=true turns
// both off. OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name the
// service (the program's name by default).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The environment variables Start reads itself; autoexport reads the
// exporters' own (OTEL_EXPORTER_OTLP_*, ...).
const (
	EnvTraces   = "OTEL_TRACES_EXPORTER"
	EnvMetrics  = "OTEL_METRICS_EXPORTER"
	EnvDisabled = "OTEL_SDK_DISABLED"
)

// MetricsPath is where the -metrics endpoint serves Prometheus text.
const MetricsPath = "/metrics"

// ShutdownTimeout bounds Shutdown's flush of the spans and metrics not yet
// exported: 5 s.
const ShutdownTimeout = 5 * time.Second

// ErrBadAddr is wrapped by Start's error when the -metrics address is not
// host:port, or nothing can listen on it.
var ErrBadAddr = errors.New("bad -metrics address")

// ErrBadEnv is wrapped by Start's error when an OTEL_* variable names an
// exporter that does not exist or cannot be made.
var ErrBadEnv = errors.New("bad OpenTelemetry environment")

// Telemetry is what Start turned on; Shutdown turns it off. Its zero value
// is off.
type Telemetry struct {
	// MetricsURL is where the -metrics endpoint serves
	// (http://127.0.0.1:9464/metrics), the port resolved when ADDR asked
	// for port 0; "" without -metrics.
	MetricsURL string

	tp  *sdktrace.TracerProvider
	mp  *sdkmetric.MeterProvider
	srv *http.Server
	wg  sync.WaitGroup
}

// Tracing reports whether Start set a global TracerProvider.
func (t *Telemetry) Tracing() bool { return t.tp != nil }

// Metrics reports whether Start set a global MeterProvider.
func (t *Telemetry) Metrics() bool { return t.mp != nil }

// CheckAddr refuses a -metrics address that is not host:port (with
// ErrBadAddr), before anything is started. "" (no -metrics) passes.
func CheckAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%w %q: %w", ErrBadAddr, addr, err)
	}
	return nil
}

// Start turns on what the environment and metricsAddr ask for, for the
// program named service. Traces (OTEL_TRACES_EXPORTER set, not none): a
// global TracerProvider that batches spans to the exporter autoexport makes,
// and the global propagator W3C tracecontext + baggage. Metrics (metricsAddr
// not "", or OTEL_METRICS_EXPORTER set, not none): a global MeterProvider,
// with a Prometheus reader served on http://metricsAddr/metrics until
// Shutdown. When neither is asked for, it sets nothing: the globals stay
// OpenTelemetry's no-ops, which cost nothing.
//
// The error wraps ErrBadAddr for a metricsAddr that is not host:port or
// cannot be listened on, ErrBadEnv for an exporter autoexport cannot make;
// nothing is left running then. Call Shutdown on the Telemetry returned,
// also on a program's error path: it flushes.
func Start(ctx context.Context, service, metricsAddr string) (*Telemetry, error) {
	t := &Telemetry{}
	if err := CheckAddr(metricsAddr); err != nil {
		return nil, err
	}
	disabled := strings.EqualFold(strings.TrimSpace(os.Getenv(EnvDisabled)), "true")
	traces := on(os.Getenv(EnvTraces)) && !disabled
	metrics := on(os.Getenv(EnvMetrics)) && !disabled
	if !traces && !metrics && metricsAddr == "" {
		return t, nil
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: resource: %w", ErrBadEnv, err)
	}

	var ln net.Listener
	if metricsAddr != "" {
		ln, err = net.Listen("tcp", metricsAddr)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrBadAddr, metricsAddr, err)
		}
	}
	fail := func(err error) (*Telemetry, error) {
		if ln != nil {
			_ = ln.Close()
		}
		_ = t.Shutdown(ctx)
		return nil, err
	}

	if traces {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return fail(fmt.Errorf("%w: %s=%s: %w", ErrBadEnv, EnvTraces, os.Getenv(EnvTraces), err))
		}
		t.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	}

	var readers []sdkmetric.Option
	reg := prometheus.NewRegistry()
	if ln != nil {
		exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
		if err != nil {
			return fail(fmt.Errorf("prometheus exporter: %w", err))
		}
		readers = append(readers, sdkmetric.WithReader(exp))
	}
	if metrics {
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			return fail(fmt.Errorf("%w: %s=%s: %w", ErrBadEnv, EnvMetrics, os.Getenv(EnvMetrics), err))
		}
		readers = append(readers, sdkmetric.WithReader(r))
	}
	if len(readers) > 0 {
		t.mp = sdkmetric.NewMeterProvider(append(readers, sdkmetric.WithResource(res))...)
	}

	if ln != nil {
		mux := http.NewServeMux()
		mux.Handle(MetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		t.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		t.MetricsURL = "http://" + ln.Addr().String() + MetricsPath
		t.wg.Go(func() { _ = t.srv.Serve(ln) })
	}
	// The globals are set last, once nothing can fail.
	if t.tp != nil {
		otel.SetTracerProvider(t.tp)
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	}
	if t.mp != nil {
		otel.SetMeterProvider(t.mp)
	}
	return t, nil
}

// on reports whether an OTEL_*_EXPORTER value asks for an exporter: unset,
// empty and none do not.
func on(v string) bool {
	v = strings.TrimSpace(v)
	return v != "" && v != "none"
}

// Shutdown flushes the spans and metrics not yet exported and stops the
// exporters and the -metrics endpoint, within ctx and at most
// ShutdownTimeout. The global providers stay set, shut down: what is
// recorded after Shutdown is dropped. The error joins the exporters' (a
// collector that could not be reached). Safe on a zero or nil Telemetry.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	var errs []error
	if t.tp != nil {
		if err := t.tp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("traces: %w", err))
		}
	}
	if t.mp != nil {
		if err := t.mp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("metrics: %w", err))
		}
	}
	if t.srv != nil {
		_ = t.srv.Close()
		t.wg.Wait()
	}
	return errors.Join(errs...)
}

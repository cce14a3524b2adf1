// The cost of the instrumentation: gather's BenchmarkGather and
// BenchmarkConcurrent, and nats.go's request, run plain, through the
// wrappers with tracing off (the global no-op providers), and with tracing
// and metrics on (the SDK, sampling every span, exporting none).
//
//	go test -run '^$' -bench . -benchmem -count 6 ./otelnats

package otelnats_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"reqreply/gather"
	"reqreply/internal/testserver"
	"reqreply/multireply/variants"
	"reqreply/otelnats"
)

// dropSpans is a span processor that keeps nothing: the spans are recorded
// (every attribute and event set) and dropped at their end, as an exporter
// with nowhere to send would.
type dropSpans struct{}

func (dropSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (dropSpans) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (dropSpans) Shutdown(context.Context) error                  { return nil }
func (dropSpans) ForceFlush(context.Context) error                { return nil }

// modes are the three ways each benchmark runs: "plain" without this
// package, "off" through it with the global providers unset, "on" through
// it with the SDK's tracer (always sampling) and meter providers.
var modes = []string{"plain", "off", "on"}

// telemetryFor returns the Telemetry of mode (nil for plain).
func telemetryFor(b *testing.B, mode string) *otelnats.Telemetry {
	b.Helper()
	var opts []otelnats.Option
	switch mode {
	case "plain":
		return nil
	case "on":
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(dropSpans{}))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		b.Cleanup(func() {
			_ = tp.Shutdown(context.Background())
			_ = mp.Shutdown(context.Background())
		})
		opts = append(opts, otelnats.WithTracerProvider(tp), otelnats.WithMeterProvider(mp))
	}
	tel, err := otelnats.New(opts...)
	require.NoError(b, err)
	return tel
}

// benchServer starts a server with n responders to "bench", each answering
// "ok" at once, spread over four connections, and returns a requester
// connection.
func benchServer(b *testing.B, n int) *nats.Conn {
	b.Helper()
	s := testserver.New(b)
	conns := make([]*nats.Conn, 4)
	for i := range conns {
		conns[i] = connect(b, s.ClientURL(), fmt.Sprint("bench responders ", i))
	}
	for i := range n {
		_, err := conns[i%len(conns)].Subscribe("bench", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
		require.NoError(b, err)
	}
	for _, nc := range conns {
		require.NoError(b, nc.Flush())
	}
	return connect(b, s.ClientURL(), "requester")
}

// BenchmarkRequest is one request and its reply per op: nats.go's
// RequestMsgWithContext, or Telemetry.RequestMsg.
func BenchmarkRequest(b *testing.B) {
	for _, mode := range modes {
		b.Run("mode="+mode, func(b *testing.B) {
			nc := benchServer(b, 1)
			tel := telemetryFor(b, mode)
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if tel == nil {
					_, err = nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: "bench"})
				} else {
					_, err = tel.RequestMsg(ctx, nc, &nats.Msg{Subject: "bench"})
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGather is gather's BenchmarkGather (one gather per op, ranged as
// a Stream, MaxReplies the number of responders) for 1 and 10 responders,
// on the variant itself (plain) or wrapped by Telemetry.Variant.
func BenchmarkGather(b *testing.B) {
	for _, variant := range variants.Names {
		for _, n := range []int{1, 10} {
			for _, mode := range modes {
				b.Run(fmt.Sprintf("variant=%s/responders=%d/mode=%s", variant, n, mode), func(b *testing.B) {
					nc := benchServer(b, n)
					v, release, err := variants.New(variant, nc)
					require.NoError(b, err)
					b.Cleanup(func() { _ = release() })
					if tel := telemetryFor(b, mode); tel != nil {
						v = tel.Variant(v)
					}
					ctx := context.Background()
					b.ReportAllocs()
					for b.Loop() {
						s, err := v.Stream(ctx, "bench", nil, gather.Timeout(10*time.Second), gather.MaxReplies(n))
						if err != nil {
							b.Fatal(err)
						}
						for range s.Replies() {
						}
						if res, err := s.Result(); err != nil || res.Count != n {
							b.Fatalf("%d of %d replies: %v", res.Count, n, err)
						}
					}
				})
			}
		}
	}
}

// BenchmarkConcurrent is gather's BenchmarkConcurrent for 3 responders at
// concurrency 1 and 64: C goroutines sharing one requester connection,
// one gather.Gather (plain) or Telemetry.Gather per op. It reports
// gathers/s.
func BenchmarkConcurrent(b *testing.B) {
	const responders = 3
	for _, variant := range variants.Names {
		for _, c := range []int{1, 64} {
			for _, mode := range modes {
				b.Run(fmt.Sprintf("variant=%s/concurrency=%d/mode=%s", variant, c, mode), func(b *testing.B) {
					nc := benchServer(b, responders)
					v, release, err := variants.New(variant, nc)
					require.NoError(b, err)
					b.Cleanup(func() { _ = release() })
					tel := telemetryFor(b, mode)
					op := func(ctx context.Context) (gather.Result, error) {
						if tel == nil {
							return gather.Gather(ctx, v, "bench", nil, gather.MaxReplies(responders))
						}
						return tel.Gather(ctx, v, "bench", nil, gather.MaxReplies(responders))
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
					defer cancel()
					var next atomic.Int64
					errs := make(chan error, c)
					b.ReportAllocs()
					b.ResetTimer()
					start := time.Now()
					var wg sync.WaitGroup
					for range c {
						wg.Go(func() {
							for next.Add(1) <= int64(b.N) {
								res, err := op(ctx)
								if err == nil && res.Count != responders {
									err = fmt.Errorf("%d of %d replies", res.Count, responders)
								}
								if err != nil {
									errs <- err
									return
								}
							}
						})
					}
					wg.Wait()
					elapsed := time.Since(start)
					b.StopTimer()
					close(errs)
					for err := range errs {
						b.Fatal(err)
					}
					b.ReportMetric(float64(b.N)/elapsed.Seconds(), "gathers/s")
				})
			}
		}
	}
}

package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// benchResponders subscribes n minimal responders to subject, spread over
// four connections, each answering "ok" at once, and waits until the server
// has them all.
func benchResponders(b *testing.B, url string, subject string, n int) {
	b.Helper()
	var conns []*nats.Conn
	for i := range 4 {
		nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("bench responders %d", i)))
		require.NoError(b, err)
		b.Cleanup(nc.Close)
		conns = append(conns, nc)
	}
	for i := range n {
		_, err := conns[i%len(conns)].Subscribe(subject, func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
		require.NoError(b, err)
	}
	for _, nc := range conns {
		require.NoError(b, nc.Flush())
	}
}

// BenchmarkRequest/raw is the baseline: nats.go's own Request to one
// responder, one reply per op.
func BenchmarkRequest(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		env := newEnv(b)
		benchResponders(b, env.URL, "bench", 1)
		nc := connect(b, env, "requester")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := nc.Request("bench", nil, 10*time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGather times one scatter-gather per op with MaxReplies set to the
// number of responders, for each variant and 1 to 1000 responders. It also
// reports µs-after-last: how long after the last reply arrived the gather
// returned, which MaxReplies keeps far below the deadline (10 s here).
//
//	go test -run '^$' -bench . -benchmem ./multireply
func BenchmarkGather(b *testing.B) {
	for _, variant := range Variants {
		for _, n := range []int{1, 10, 100, 1000} {
			b.Run(fmt.Sprintf("variant=%s/responders=%d", variant, n), func(b *testing.B) {
				env := newEnv(b)
				benchResponders(b, env.URL, "bench", n)
				nc := connect(b, env, "requester")
				v, release, err := NewVariant(variant, nc)
				require.NoError(b, err)
				b.Cleanup(func() { _ = release() })
				ctx := context.Background()
				var after time.Duration
				b.ReportAllocs()
				for b.Loop() {
					s, err := v.Stream(ctx, "bench", nil, Timeout(10*time.Second), MaxReplies(n))
					if err != nil {
						b.Fatal(err)
					}
					var last time.Duration
					for r := range s.Replies() {
						last = r.At
					}
					res, err := s.Result()
					if err != nil || res.Count != n {
						b.Fatalf("%d of %d replies: %v", res.Count, n, err)
					}
					after += res.Elapsed - last
				}
				b.ReportMetric(float64(after.Microseconds())/float64(b.N), "µs-after-last")
			})
		}
	}
}

// BenchmarkConcurrentGathers runs 64 gathers at a time on one requester
// connection, 3 responders each (MaxReplies(3)), for each variant: one op is
// one gather; gathers/s is the throughput. Target: shared at least 2×
// natsext.
//
//	go test -run '^$' -bench ConcurrentGathers -benchtime 2000x -count 3 ./multireply
func BenchmarkConcurrentGathers(b *testing.B) {
	const concurrency, responders = 64, 3
	for _, variant := range Variants {
		b.Run("variant="+variant, func(b *testing.B) {
			env := newEnv(b)
			benchResponders(b, env.URL, "bench", responders)
			nc := connect(b, env, "requester")
			v, release, err := NewVariant(variant, nc)
			require.NoError(b, err)
			b.Cleanup(func() { _ = release() })
			ctx := context.Background()
			var next atomic.Int64
			errs := make(chan error, concurrency)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range concurrency {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						res, err := Gather(ctx, v, "bench", nil, Timeout(10*time.Second), MaxReplies(responders))
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
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "gathers/s")
		})
	}
}

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

// benchConcurrency are the numbers of requests in flight the benchmarks try.
var benchConcurrency = []int{1, 16, 64}

// BenchmarkQueueGroup measures requests per second (b.N requests per run)
// through a queue group of 1, 3 and 8 workers with Load, the scenario's own
// requester, beside the raw baseline: plain nc.Request calls from as many
// goroutines to a single plain subscriber. A control, request/workers=3,
// sends the same nc.Request calls to the 3-worker group, so the cost of the
// group itself is not hidden behind Load's faster requester. Each
// sub-benchmark has its own embedded server. Compare
// workers=3/concurrency=64 with raw/concurrency=64; run with
//
//	go test -run '^$' -bench BenchmarkQueueGroup -benchmem -benchtime=2s ./queuegroup
func BenchmarkQueueGroup(b *testing.B) {
	for _, c := range benchConcurrency {
		b.Run(fmt.Sprintf("raw/concurrency=%d", c), func(b *testing.B) { benchRaw(b, c, 0) })
	}
	for _, c := range benchConcurrency {
		b.Run(fmt.Sprintf("request/workers=3/concurrency=%d", c), func(b *testing.B) { benchRaw(b, c, 3) })
	}
	for _, k := range []int{1, 3, 8} {
		for _, c := range benchConcurrency {
			b.Run(fmt.Sprintf("workers=%d/concurrency=%d", k, c), func(b *testing.B) { benchGroup(b, k, c) })
		}
	}
}

// benchGroup runs b.N requests through k workers with Load, c in flight.
func benchGroup(b *testing.B, k, c int) {
	env := newEnv(b)
	members, err := startWorkers(env, DefaultConfig(), 1, k, nil)
	require.NoError(b, err)
	nc, err := env.Connect("requester")
	require.NoError(b, err)
	lc := LoadConfig{Subject: Subject, Requests: b.N, Concurrency: c, Timeout: 5 * time.Second, Settle: settleAll(members...)}

	b.ReportAllocs()
	b.ResetTimer()
	res, err := Load(context.Background(), nc, lc)
	b.StopTimer()
	require.NoError(b, err)
	require.True(b, res.Exact(), "%d of %d answered, %d timed out", res.Answered, res.Requests, res.TimedOut)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// benchRaw is the baseline: b.N plain nc.Request calls from c goroutines to
// one plain subscriber that answers each with a fixed payload or, with
// workers > 0, to that many queue group members, each on its own connection.
func benchRaw(b *testing.B, c, workers int) {
	env := newEnv(b)
	if workers == 0 {
		svc, err := env.Connect("raw-responder")
		require.NoError(b, err)
		reply := []byte("raw")
		_, err = svc.Subscribe(Subject, func(m *nats.Msg) {
			// As in the members: a failed Respond leaves the requester to
			// time out, which fails the benchmark below.
			_ = m.Respond(reply)
		})
		require.NoError(b, err)
		require.NoError(b, svc.Flush())
	} else {
		_, err := startWorkers(env, DefaultConfig(), 1, workers, nil)
		require.NoError(b, err)
	}
	nc, err := env.Connect("requester")
	require.NoError(b, err)

	var (
		next   atomic.Int64
		failed atomic.Int64
		wg     sync.WaitGroup
	)
	b.ReportAllocs()
	b.ResetTimer()
	for range min(c, b.N) {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := nc.Request(Subject, []byte("1"), 5*time.Second); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	require.Zero(b, failed.Load(), "raw requests failed")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

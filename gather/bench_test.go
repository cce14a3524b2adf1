package gather_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"reqreply/gather"
	"reqreply/multireply/variants"
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
// responder, one reply per op. Like BenchmarkGather it reports cpu-µs/op
// (see BenchmarkConcurrent).
func BenchmarkRequest(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		env := newEnv(b)
		benchResponders(b, env.URL, "bench", 1)
		nc := connect(b, env, "requester")
		b.ReportAllocs()
		cpu0 := processCPU()
		for b.Loop() {
			if _, err := nc.Request("bench", nil, 10*time.Second); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, processCPU()-cpu0)
	})
}

// BenchmarkGather times one scatter-gather per op with MaxReplies set to the
// number of responders, for each variant and 1 to 1000 responders. It also
// reports µs-after-last: how long after the last reply arrived the gather
// returned, which MaxReplies keeps far below the deadline (10 s here). The
// shared variant's requests and replies go over the Mux's own connection
// (opened once by NewMux, outside the timed loop); raw's, inbox's and
// natsext's over the requester connection.
//
//	go test -run '^$' -bench . -benchmem ./gather
func BenchmarkGather(b *testing.B) {
	for _, variant := range variants.Names {
		for _, n := range []int{1, 10, 100, 1000} {
			b.Run(fmt.Sprintf("variant=%s/responders=%d", variant, n), func(b *testing.B) {
				env := newEnv(b)
				benchResponders(b, env.URL, "bench", n)
				nc := connect(b, env, "requester")
				v, release, err := variants.New(variant, nc)
				require.NoError(b, err)
				b.Cleanup(func() { _ = release() })
				ctx := context.Background()
				var after time.Duration
				b.ReportAllocs()
				cpu0 := processCPU()
				for b.Loop() {
					s, err := v.Stream(ctx, "bench", nil, gather.Timeout(10*time.Second), gather.MaxReplies(n))
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
				reportCPU(b, processCPU()-cpu0)
				b.ReportMetric(float64(after.Microseconds())/float64(b.N), "µs-after-last")
			})
		}
	}
}

// BenchmarkConcurrent runs C requests or gathers at a time, C goroutines
// sharing one requester connection nc, against responders=M responders
// (MaxReplies(M)); one op is one gather. raw is nats.go's nc.Request (one
// connection: requests and replies on nc), so it appears only with one
// responder. floor, only with 3 responders, is the same nc.Request to 3
// responders: it takes the first reply and nats.go reads and drops the
// other two. It is what 3 responders, the server and one reading
// connection cost by themselves, with no gather at all: no way of
// collecting 3 replies can beat it. shared sends its requests and receives
// its replies on the Mux's own second connection (opened by NewMux), inbox
// and natsext on nc. It reports gathers/s, the 99th percentile of the op
// latency in µs, and cpu-µs/op: the CPU time of the whole process (server,
// responders, requester) per op, which other jobs on the machine move far
// less than the wall time.
//
//	go test -run '^$' -bench 'Concurrent/.*/.*/concurrency=(1|64)$' -benchtime 3000x -count 5 ./gather
func BenchmarkConcurrent(b *testing.B) {
	for _, variant := range append([]string{"raw", "floor"}, variants.Names...) {
		for _, m := range []int{1, 3} {
			if (variant == "raw" && m != 1) || (variant == "floor" && m != 3) {
				continue
			}
			for _, c := range []int{1, 8, 64, 256} {
				b.Run(fmt.Sprintf("variant=%s/responders=%d/concurrency=%d", variant, m, c), func(b *testing.B) {
					benchConcurrent(b, variant, m, c)
				})
			}
		}
	}
}

func benchConcurrent(b *testing.B, variant string, responders, concurrency int) {
	env := newEnv(b)
	benchResponders(b, env.URL, "bench", responders)
	nc := connect(b, env, "requester")
	op := func(ctx context.Context) error {
		_, err := nc.RequestWithContext(ctx, "bench", nil)
		return err
	}
	if variant != "raw" && variant != "floor" {
		v, release, err := variants.New(variant, nc)
		require.NoError(b, err)
		b.Cleanup(func() { _ = release() })
		op = func(ctx context.Context) error {
			res, err := gather.Gather(ctx, v, "bench", nil, gather.MaxReplies(responders))
			if err == nil && res.Count != responders {
				err = fmt.Errorf("%d of %d replies", res.Count, responders)
			}
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	errs := make(chan error, concurrency)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := op(ctx); err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "gathers/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
	reportCPU(b, cpu)
}

// reportCPU reports cpu-µs/op: the whole process's CPU time over b.N ops
// (see processCPU), unless it was not measured.
func reportCPU(b *testing.B, cpu time.Duration) {
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
	}
}

// BenchmarkScale times one gather of M replies from M responders per op and
// reports ns/reply. floor is the same exchange without a gather library:
// one request published on nc with a plain subscription (counting in its
// handler) as reply subject, waiting for the M-th message: what M
// responders and one connection's read loop cost by themselves. It also
// reports cpu-ns/reply, the whole process's CPU time per reply (see
// BenchmarkConcurrent).
//
//	go test -run '^$' -bench Scale -benchtime 20x -count 5 ./gather
func BenchmarkScale(b *testing.B) {
	for _, variant := range []string{"shared", "natsext", "floor"} {
		for _, m := range []int{100, 1000, 5000} {
			b.Run(fmt.Sprintf("variant=%s/responders=%d", variant, m), func(b *testing.B) {
				env := newEnv(b)
				benchResponders(b, env.URL, "bench", m)
				nc := connect(b, env, "requester")
				ctx := context.Background()
				var op func() error
				if variant == "floor" {
					inbox := nc.NewInbox()
					var got atomic.Int64
					all := make(chan struct{}, 1)
					sub, err := nc.Subscribe(inbox, func(*nats.Msg) {
						if got.Add(1) == int64(m) {
							all <- struct{}{}
						}
					})
					require.NoError(b, err)
					require.NoError(b, sub.SetPendingLimits(-1, -1))
					require.NoError(b, nc.Flush())
					op = func() error {
						got.Store(0)
						if err := nc.PublishRequest("bench", inbox, nil); err != nil {
							return err
						}
						select {
						case <-all:
							return nil
						case <-time.After(10 * time.Second):
							return fmt.Errorf("floor: %d of %d replies", got.Load(), m)
						}
					}
				} else {
					v, release, err := variants.New(variant, nc)
					require.NoError(b, err)
					b.Cleanup(func() { _ = release() })
					op = func() error {
						res, err := gather.Gather(ctx, v, "bench", nil, gather.Timeout(10*time.Second), gather.MaxReplies(m))
						if err == nil && res.Count != m {
							err = fmt.Errorf("%d of %d replies", res.Count, m)
						}
						return err
					}
				}
				b.ReportAllocs()
				cpu0 := processCPU()
				for b.Loop() {
					if err := op(); err != nil {
						b.Fatal(err)
					}
				}
				cpu := processCPU() - cpu0
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*m), "ns/reply")
				if cpu > 0 {
					b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*m), "cpu-ns/reply")
				}
			})
		}
	}
}

// BenchmarkIdle starts 10,000 requests or gathers (raw: nc.Request) to a
// responder that never answers (inbox and natsext: 1,000, since each of
// theirs holds a 512 KiB channel: 10,000 would take over 5 GB), waits until the responder has seen every
// request (so each is waiting for its deadline), and reports the heap they
// hold (B/gather, after a GC; goroutine stacks not included) and the
// goroutines they hold (goroutines/gather, the caller's own included: raw
// holds 1). Then it cancels them all.
//
//	go test -run '^$' -bench Idle -benchtime 1x -count 5 ./gather
func BenchmarkIdle(b *testing.B) {
	for _, variant := range append([]string{"raw"}, variants.Names...) {
		b.Run("variant="+variant, func(b *testing.B) {
			gathers := 10_000
			if variant == "inbox" || variant == "natsext" {
				gathers = 1_000
			}
			env := newEnv(b)
			rnc := connect(b, env, "silent")
			var seen atomic.Int64
			all := make(chan struct{})
			sub, err := rnc.Subscribe("idle", func(*nats.Msg) {
				if seen.Add(1) == int64(gathers) {
					close(all)
				}
			})
			require.NoError(b, err)
			require.NoError(b, sub.SetPendingLimits(-1, -1))
			require.NoError(b, rnc.Flush())
			nc := connect(b, env, "requester")
			var v gather.Variant
			if variant != "raw" {
				var release func() error
				v, release, err = variants.New(variant, nc)
				require.NoError(b, err)
				b.Cleanup(func() { _ = release() })
			}
			// The runtime keeps the descriptor (g) of every goroutine that
			// has ended, for reuse: start and end as many goroutines as
			// there will be gathers first, so that the first variant run
			// does not pay for descriptors the later ones reuse.
			var warm sync.WaitGroup
			release := make(chan struct{})
			for range gathers {
				warm.Go(func() { <-release })
			}
			close(release)
			warm.Wait()
			var heap, routines float64
			for b.Loop() {
				seen.Store(0)
				all = make(chan struct{})
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				var ms runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms)
				heap0, g0 := ms.HeapAlloc, runtime.NumGoroutine()
				var wg sync.WaitGroup
				for range gathers {
					wg.Go(func() {
						if v == nil {
							_, _ = nc.RequestWithContext(ctx, "idle", nil)
							return
						}
						_, _ = gather.Gather(ctx, v, "idle", nil)
					})
				}
				select {
				case <-all:
				case <-time.After(30 * time.Second):
					b.Fatalf("the responder saw %d of %d requests", seen.Load(), gathers)
				}
				// A request seen by the responder may come from a goroutine
				// not yet waiting for its reply (runnable, or queued on a
				// lock), which holds less than a waiting one.
				waitParked(b, gathers)
				runtime.GC()
				runtime.ReadMemStats(&ms)
				heap += float64(int64(ms.HeapAlloc)-int64(heap0)) / float64(gathers)
				routines += float64(runtime.NumGoroutine()-g0) / float64(gathers)
				cancel()
				wg.Wait()
			}
			b.ReportMetric(heap/float64(b.N), "B/gather")
			b.ReportMetric(routines/float64(b.N), "goroutines/gather")
		})
	}
}

// waitParked waits, up to 30 s, until n goroutines started by BenchmarkIdle
// are parked in a select or a channel receive: every gather is then waiting
// for its reply or its deadline, as BenchmarkIdle means to measure. It polls
// the goroutines' stacks every 10 ms (nothing signals a goroutine's park).
func waitParked(b *testing.B, n int) {
	b.Helper()
	buf := make([]byte, 64<<20)
	parked := 0
	for range 3000 {
		parked = 0
		for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			head, _, _ := strings.Cut(g, "\n")
			if (strings.Contains(head, "[select") || strings.Contains(head, "[chan receive")) && strings.Contains(g, "BenchmarkIdle.func") {
				parked++
			}
		}
		if parked >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("%d of %d gathers waiting after 30 s", parked, n)
}

// BenchmarkStopRules times one gather per op on the shared variant from n
// named responders (ResponderHeader set), ended by each rule that knows the
// count: MaxReplies(n), Expect over the n names, StopWhen counting to n.
// What Expect and StopWhen cost over MaxReplies is their bookkeeping: a map
// of answers per responder, the replies kept for the predicate.
//
//	go test -run '^$' -bench StopRules -benchmem ./gather
func BenchmarkStopRules(b *testing.B) {
	for _, n := range []int{10, 100} {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("r%d", i+1)
		}
		rules := []struct {
			name string
			opt  gather.Option
		}{
			{"max", gather.MaxReplies(n)},
			{"expect", gather.Expect(names...)},
			{"stopwhen", gather.StopWhen(func(rs []gather.Reply) bool { return len(rs) == n })},
		}
		for _, rule := range rules {
			b.Run(fmt.Sprintf("rule=%s/responders=%d", rule.name, n), func(b *testing.B) {
				env := newEnv(b)
				serveNamed(b, connect(b, env, "responders"), "bench", 0, names...)
				nc := connect(b, env, "requester")
				v, release, err := variants.New("shared", nc)
				require.NoError(b, err)
				b.Cleanup(func() { _ = release() })
				b.ReportAllocs()
				for b.Loop() {
					res, err := gather.Gather(context.Background(), v, "bench", nil, gather.Timeout(10*time.Second), rule.opt)
					if err != nil || res.Count != n || res.Reason == gather.StopDeadline {
						b.Fatalf("%d of %d replies, %s: %v", res.Count, n, res.Reason, err)
					}
				}
			})
		}
	}
}

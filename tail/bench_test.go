package main

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"reqreply/hedge"
	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

// BenchmarkInterestChange measures what one admission-control leave and
// rejoin costs a requester: the time from a member's UNSUB (or SUB) being
// flushed to its own server until a requester sees the change, that is until
// a request gets no responders (or a reply). On one server that is the
// flush itself; on a 2-node cluster, with the member on one node and the
// requester on the other, the change must cross the route first. Reported
// per change as join-µs and leave-µs, and lost/op: requests that got no
// reply within 100 ms because a node routed them to a member that had
// already left (on a cluster, interest changes cross the route
// asynchronously). Timing is measured, never asserted.
//
//	go test -run '^$' -bench InterestChange -benchtime 200x -count 3 ./tail
func BenchmarkInterestChange(b *testing.B) {
	for _, tc := range []struct {
		name  string
		nodes int
	}{{"one server", 1}, {"cluster of 2", 2}} {
		b.Run(tc.name, func(b *testing.B) {
			memberURL, requesterURL := "", ""
			if tc.nodes == 1 {
				s := testserver.New(b)
				memberURL, requesterURL = s.ClientURL(), s.ClientURL()
			} else {
				nodes := testserver.NewCluster(b, tc.nodes)
				memberURL, requesterURL = nodes[0].ClientURL(), nodes[1].ClientURL()
			}
			menv, renv := cli.NewEnv("tail", memberURL), cli.NewEnv("tail", requesterURL)
			b.Cleanup(func() { require.NoError(b, errors.Join(renv.Close(), menv.Close())) })
			mc, err := menv.Connect("member")
			require.NoError(b, err)
			rc, err := renv.Connect("requester")
			require.NoError(b, err)
			// ask sends one request from the requester's node: answered,
			// no responders, or lost (no reply within 100 ms: the server
			// routed it to a node where the member was already gone).
			const lostAfter = 100 * time.Millisecond
			ask := func() (answered, lost bool) {
				_, err := rc.Request(Subject, []byte("1"), lostAfter)
				switch {
				case err == nil:
					return true, false
				case errors.Is(err, nats.ErrNoResponders):
					return false, false
				case errors.Is(err, nats.ErrTimeout):
					return false, true
				}
				b.Fatal(err)
				return false, false
			}
			var join, leave time.Duration
			var lost int
			b.ResetTimer()
			for b.Loop() {
				sub, err := mc.QueueSubscribe(Subject, Group, func(m *nats.Msg) { _ = m.Respond([]byte("ok")) })
				require.NoError(b, err)
				require.NoError(b, mc.Flush())
				t0 := time.Now()
				for {
					answered, l := ask()
					if l {
						lost++
					}
					if answered {
						break
					}
				}
				join += time.Since(t0)
				require.NoError(b, sub.Unsubscribe())
				require.NoError(b, mc.Flush())
				t0 = time.Now()
				for {
					answered, l := ask()
					if l {
						lost++
					}
					if !answered && !l {
						break
					}
				}
				leave += time.Since(t0)
			}
			b.ReportMetric(float64(join.Microseconds())/float64(b.N), "join-µs")
			b.ReportMetric(float64(leave.Microseconds())/float64(b.N), "leave-µs")
			b.ReportMetric(float64(lost)/float64(b.N), "lost/op")
		})
	}
}

// BenchmarkRequest measures the client's hot path: one request and its
// reply through Client.Request, one at a time (ns/op is the round trip) and
// 16 in flight, with 3 members that answer at once on one server. It is
// the figure that the -secure plumbing (a denial watch per subject in
// flight, the close watch, probes before the load) must not raise. Timing
// is measured, never asserted.
//
//	go test -run '^$' -bench 'Request' -benchtime 20000x -count 3 ./tail
func BenchmarkRequest(b *testing.B) {
	for _, tc := range []struct {
		name     string
		inFlight int
		policy   hedge.Policy
	}{
		{"plain", 1, hedge.Policy{}},
		{"plain 16 in flight", 16, hedge.Policy{}},
		{"hedged 16 in flight", 16, hedge.Policy{Hedge: hedge.Hedge{Delay: DefaultHedge, Adaptive: true}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := testserver.New(b)
			env := cli.NewEnv("tail", s.ClientURL())
			var members []*Member
			b.Cleanup(func() {
				require.NoError(b, errors.Join(StopAll(context.Background(), members), env.Close()))
			})
			for i := 1; i <= 3; i++ {
				m, err := startMember(env, memberName(i), MemberOptions{Workers: 16})
				require.NoError(b, err)
				members = append(members, m)
			}
			nc, err := env.Connect("requester")
			require.NoError(b, err)
			c, err := newClient(nc, tc.policy)
			require.NoError(b, err)
			b.Cleanup(func() { _ = c.Close() })
			var n atomic.Int64
			one := func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, err := c.Request(ctx, Subject, []byte(strconv.FormatInt(n.Add(1), 10)))
				return err
			}
			b.ResetTimer()
			if tc.inFlight == 1 {
				for b.Loop() {
					require.NoError(b, one())
				}
				return
			}
			// RunParallel runs parallelism × GOMAXPROCS goroutines.
			b.SetParallelism(max(tc.inFlight/runtime.GOMAXPROCS(0), 1))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := one(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

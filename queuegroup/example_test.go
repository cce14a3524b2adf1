package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"reqreply/internal/cli"
	"reqreply/internal/testserver"
)

// The examples run demos as `go run ./queuegroup -demo ...` does, on an
// embedded server. Which member takes a request is random, and timings
// vary, so each prints only the lines of the output that do not: the ones
// starting with the given prefixes.

// runExample runs cfg on a fresh embedded server and prints the lines of
// its output that start with one of prefixes.
func runExample(cfg Config, prefixes ...string) {
	s, err := testserver.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer testserver.Shutdown(s)
	env := cli.NewEnv("queuegroup", s.ClientURL())
	defer func() {
		if err := env.Close(); err != nil {
			fmt.Println(err)
		}
	}()
	// In the die demo, a retry waits until the server has dropped the dead
	// member, so it cannot be routed there (tests only).
	cfg.afterDeath = func(context.Context) error {
		return testserver.WaitForSubscribers(s, Subject, cfg.Workers-1)
	}
	var out bytes.Buffer
	if err := Run(context.Background(), env, cfg, &out); err != nil {
		fmt.Println(err)
	}
	for _, line := range strings.SplitAfter(out.String(), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				fmt.Print(line)
				break
			}
		}
	}
}

// Example is the default run: three workers share thirty requests.
func Example() {
	runExample(DefaultConfig(), "queue group", "verified")
	// Output:
	// queue group "workers" on "queuegroup.work": 3 members, 30 requests, 1 in flight, timeout 1s
	// verified: 30 requests, 30 replies: every request answered exactly once (0 lost, 0 duplicated)
}

// Example_mixed: plain subscribers see every request; each queue group
// answers each request once.
func Example_mixed() {
	cfg := DefaultConfig()
	cfg.Demo = DemoMixed
	runExample(cfg, "on ", "queue group", "plain", "  listener", "verified", "so ")
	// Output:
	// on "queuegroup.work": queue group "workers" (3 members), queue group "auditors" (2 members), 2 plain subscribers; 30 requests, 1 in flight
	// queue group "workers", one member per request:
	// queue group "auditors", one member per request:
	// plain subscribers, every request each:
	//   listener-1 received 30 of 30
	//   listener-2 received 30 of 30
	// verified: 30 requests, 60 replies: every request answered exactly 2 times, once per group (0 lost, 0 duplicated)
	// so a requester gathering replies gets one from each queue group, and plain subscribers see every request
}

// Example_drain: a member drains under load and nothing is lost.
func Example_drain() {
	cfg := DefaultConfig()
	cfg.Demo, cfg.Concurrency = DemoDrain, 8
	runExample(cfg, "worker-1 drains", "verified")
	// Output:
	// worker-1 drains (its connection's Drain) just before request 11 is sent
	// verified: 30 requests, 30 replies: every request answered exactly once (0 lost, 0 duplicated)
}

// Example_scale: a member joins under load.
func Example_scale() {
	cfg := DefaultConfig()
	cfg.Demo, cfg.Requests = DemoScale, 300
	runExample(cfg, "worker-4 joins", "verified")
	// Output:
	// worker-4 joins just before request 101 is sent
	// verified: 300 requests, 300 replies: every request answered exactly once (0 lost, 0 duplicated)
}

// Example_die: a member dies holding a request, which times out and, with
// -retry, is answered by another member.
func Example_die() {
	cfg := DefaultConfig()
	// 1 s: the live members must answer within it even on a loaded machine.
	cfg.Demo, cfg.Requests, cfg.Timeout, cfg.Retry = DemoDie, 300, time.Second, true
	runExample(cfg, "worker-1 d", "retry", "a retry", "verified")
	// Output:
	// worker-1 dies (closes its connection without draining) as it takes its request #2
	// worker-1 died holding 1 request: no reply within 1s
	// retry: re-sent 1 timed-out request once: 1 answered by the members left
	// a retry is safe only if the handler is idempotent: worker-1 may have done the work and died before replying, so a retried request may run twice
	// verified: 300 requests, 300 replies: every request answered exactly once (0 lost, 0 duplicated, 1 after a retry)
}

// Example_gone: once every member has drained, a request fails at once.
func Example_gone() {
	cfg := DefaultConfig()
	cfg.Demo = DemoGone
	runExample(cfg, "verified", "all ", "request ")
	// Output:
	// verified: 30 requests, 30 replies: every request answered exactly once (0 lost, 0 duplicated)
	// all 3 members drained: nobody subscribes to "queuegroup.work" any more
	// request 31: nats: no responders available for request
}

// Example_micro: three micro instances share the requests, and $SRV.STATS
// counts the same split.
func Example_micro() {
	cfg := DefaultConfig()
	cfg.Demo = DemoMicro
	runExample(cfg, "micro", "$SRV", "verified")
	// Output:
	// micro service "queuegroup", endpoint "work" on "queuegroup.micro" in queue group "q": 3 instances, 30 requests, 1 in flight
	// $SRV.STATS.queuegroup, answered by 3 instances:
	// verified: 30 requests, 30 replies: every request answered exactly once (0 lost, 0 duplicated)
	// $SRV.STATS agrees: the instances counted 30 requests, as many as each one's replies show
}

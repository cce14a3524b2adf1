// The examples pkg.go.dev shows first: a hedged request, a deadline that
// travels in the request's header, admission control past a limit, and
// the retry's backoff; checked by go test against the server TestMain
// starts (NATS_URL).

package hedge_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/hedge"
)

// natsURL is the server to connect to: NATS_URL, else nats.DefaultURL.
func natsURL() string {
	if url := os.Getenv("NATS_URL"); url != "" {
		return url
	}
	return nats.DefaultURL
}

// A hedged request: the responder stalls on the first copy (as a member in
// a garbage-collection pause would), so after 10 ms the client sends a
// second copy, whose reply it takes. Hedge only idempotent requests: both
// copies may run.
func ExampleClient_Request() {
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	// The responder: the plain nats.go calls; the first request stalls.
	var n atomic.Int64
	sub, err := nc.Subscribe("greet.joe", func(m *nats.Msg) {
		if n.Add(1) == 1 {
			return // stalled: never answered
		}
		_ = m.Respond([]byte("hello, joe"))
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Unsubscribe()

	// The client: hedge after 10 ms, within an overall deadline of 1 s.
	c, err := hedge.NewClient(nc, hedge.Policy{Hedge: hedge.Hedge{Delay: 10 * time.Millisecond}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	msg, err := c.Request(ctx, "greet.joe", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s (hedges sent: %d)\n", msg.Data, c.Stats().Hedges)
	// Output: hello, joe (hedges sent: 1)
}

// A deadline that travels with the request: the client writes it into
// hedge.DeadlineHeader (Policy.Propagate), and the responder reads it and
// skips a request whose caller has stopped waiting (hedge.Expired).
func ExamplePolicy_propagate() {
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	sub, err := nc.Subscribe("report", func(m *nats.Msg) {
		if hedge.Expired(m, time.Now()) {
			return // nobody waits for it: no work, no reply
		}
		deadline, ok, _ := hedge.DeadlineOf(m)
		_ = m.Respond(fmt.Appendf(nil, "deadline carried: %v, %v left at most", ok, time.Until(deadline) <= time.Second))
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Unsubscribe()

	c, err := hedge.NewClient(nc, hedge.Policy{Propagate: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	msg, err := c.Request(ctx, "report", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(msg.Data))
	// Output: deadline carried: true, true left at most
}

// Admission control: a responder with a limit of 1 in progress leaves its
// queue group while it works, so a request then finds no responders (a
// client with a Backoff retries it), and rejoins when the work is done.
func ExampleAdmission() {
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	taken, release := make(chan struct{}, 2), make(chan struct{})
	var adm *hedge.Admission
	adm = hedge.NewAdmission(1, func(h nats.MsgHandler) (*nats.Subscription, error) {
		return nc.QueueSubscribe("work", "workers", h)
	}, func(m *nats.Msg) {
		taken <- struct{}{}
		<-release
		adm.Done() // below the limit: it rejoins before the reply leaves
		_ = m.Respond([]byte("done " + string(m.Data)))
	})
	if err := adm.Join(nil); err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		for _, sub := range adm.Close() {
			_ = sub.Unsubscribe()
		}
	}()

	inbox := nc.NewInbox()
	replies, err := nc.SubscribeSync(inbox)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = nc.PublishRequest("work", inbox, []byte("1"))
	<-taken        // 1 is in progress: the responder has left the group
	_ = nc.Flush() // and the server has its UNSUB
	_, err = nc.Request("work", []byte("2"), time.Second)
	fmt.Println("2:", err)

	close(release)
	for _, next := range []func() (*nats.Msg, error){
		func() (*nats.Msg, error) { return replies.NextMsg(time.Second) },
		func() (*nats.Msg, error) { return nc.Request("work", []byte("3"), time.Second) },
	} {
		msg, err := next()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(msg.Data))
	}
	// Output:
	// 2: nats: no responders available for request
	// done 1
	// done 3
}

// The full-jitter schedule of the rolling restart's retries: retry n waits a
// random time below min(20 ms, 1 ms·2^(n-1)); here the draw is 0.5, half the
// ceiling.
func ExampleBackoff_Wait() {
	b := hedge.Backoff{Base: time.Millisecond, Max: 20 * time.Millisecond}
	for n := 1; n <= 7; n++ {
		fmt.Printf("retry %d waits %v\n", n, b.Wait(n, 0.5))
	}
	// Output:
	// retry 1 waits 500µs
	// retry 2 waits 1ms
	// retry 3 waits 2ms
	// retry 4 waits 4ms
	// retry 5 waits 8ms
	// retry 6 waits 10ms
	// retry 7 waits 10ms
}

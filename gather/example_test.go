// The Examples: the lines a user copies. They import only the standard
// library, nats.go and gather, so that this file runs also in a module of
// its own (TestCopiedDirectory), and connect to NATS_URL (main_test.go
// starts a server and sets it).

package gather_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"reqreply/gather"
)

// connectExample connects to NATS_URL, or nats.DefaultURL without it.
func connectExample() (*nats.Conn, error) {
	url := os.Getenv("NATS_URL")
	if url == "" {
		url = nats.DefaultURL
	}
	return nats.Connect(url)
}

// serveExample starts n responders on subject, each answering every request
// with its name, and flushes so that the server has them before a request.
func serveExample(nc *nats.Conn, subject string, n int) error {
	for i := range n {
		name := fmt.Sprintf("r%d", i+1)
		if _, err := nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond([]byte(name)) }); err != nil {
			return err
		}
	}
	return nc.Flush()
}

// A gather with a deadline and max replies: one request, every reply until
// the third or until a second has passed, whichever comes first.
func ExampleGather() {
	nc, err := connectExample()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Drain()
	if err := serveExample(nc, "greet.all", 3); err != nil {
		fmt.Println(err)
		return
	}

	res, err := gather.Gather(context.Background(), gather.Inbox{Conn: nc}, "greet.all", []byte("hi"),
		gather.Timeout(time.Second), gather.MaxReplies(3))
	if err != nil {
		fmt.Println(err)
		return
	}
	var names []string
	for _, r := range res.Replies {
		names = append(names, string(r.Msg.Data))
	}
	slices.Sort(names) // replies come in any order
	fmt.Println(res.Count, "replies:", names, "stopped:", res.Reason)
	// Output: 3 replies: [r1 r2 r3] stopped: max reached
}

// A Mux serves many gathers on one subscription: each is one publish, with
// its own reply token, running concurrently.
func ExampleMux() {
	nc, err := connectExample()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Drain()
	if err := serveExample(nc, "greet.mux", 2); err != nil {
		fmt.Println(err)
		return
	}
	m, err := gather.NewMux(nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	var wg sync.WaitGroup
	counts := make([]int, 20)
	for i := range counts {
		wg.Go(func() {
			res, err := gather.Gather(context.Background(), m, "greet.mux", nil,
				gather.Timeout(5*time.Second), gather.MaxReplies(2))
			if err == nil {
				counts[i] = res.Count
			}
		})
	}
	wg.Wait()
	total := 0
	for _, n := range counts {
		total += n
	}
	fmt.Println(len(counts), "gathers,", total, "replies")
	// Output: 20 gathers, 40 replies
}

// A Stream hands out each reply as it arrives; Result then says why the
// gather stopped. Breaking out of the loop would end it at once.
func ExampleStream() {
	nc, err := connectExample()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Drain()
	if err := serveExample(nc, "greet.stream", 3); err != nil {
		fmt.Println(err)
		return
	}

	s, err := gather.Inbox{Conn: nc}.Stream(context.Background(), "greet.stream", nil,
		gather.Timeout(time.Second), gather.MaxReplies(3))
	if err != nil {
		fmt.Println(err)
		return
	}
	for r := range s.Replies() {
		fmt.Println("reply from", string(r.Msg.Data))
	}
	res, err := s.Result()
	fmt.Println(res.Count, "replies, stopped:", res.Reason, err)
	// Unordered output:
	// reply from r1
	// reply from r2
	// reply from r3
	// 3 replies, stopped: max reached <nil>
}

// A gather that knows when it is done: Discover asks a micro service for
// its instances ($SRV.PING, itself a gather), each instance's endpoint
// names it in its replies (Identify), and Expect ends the gather the moment
// the last of them has answered, not at the deadline.
func ExampleExpect() {
	nc, err := connectExample()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Drain()
	// Three instances of "stock", each answering on stock.count with no
	// queue group, so that every instance gets each request.
	for range 3 {
		svc, err := micro.AddService(nc, micro.Config{Name: "stock", Version: "1.0.0"})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer svc.Stop()
		err = svc.AddEndpoint("count", gather.Identify(svc.Info().ID, micro.HandlerFunc(func(r micro.Request) {
			_ = r.Respond([]byte("42"))
		})), micro.WithEndpointSubject("stock.count"), micro.WithEndpointQueueGroupDisabled())
		if err != nil {
			fmt.Println(err)
			return
		}
	}

	v := gather.Inbox{Conn: nc}
	ids, err := gather.Discover(context.Background(), v, "stock")
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := gather.Gather(context.Background(), v, "stock.count", nil,
		gather.Timeout(time.Minute), gather.Expect(ids...))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(ids), "instances,", res.Count, "replies, stopped:", res.Reason, "missing:", res.Missing)
	fmt.Println("ended long before the deadline:", res.Elapsed < res.Deadline/2)
	// Output:
	// 3 instances, 3 replies, stopped: all expected answered missing: []
	// ended long before the deadline: true
}

// A quorum read: five replicas answer with the version they hold, and the
// gather stops as soon as three agree, whoever they are.
func ExampleStopWhen() {
	nc, err := connectExample()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Drain()
	for _, version := range []string{"v7", "v7", "v6", "v7", "v7"} {
		if _, err := nc.Subscribe("config.version", func(m *nats.Msg) { _ = m.Respond([]byte(version)) }); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := nc.Flush(); err != nil {
		fmt.Println(err)
		return
	}

	var agreed string
	quorum := func(replies []gather.Reply) bool {
		votes := map[string]int{}
		for _, r := range replies {
			if votes[string(r.Msg.Data)]++; votes[string(r.Msg.Data)] == 3 {
				agreed = string(r.Msg.Data)
				return true
			}
		}
		return false
	}
	res, err := gather.Gather(context.Background(), gather.Inbox{Conn: nc}, "config.version", nil,
		gather.Timeout(time.Minute), gather.StopWhen(quorum))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("quorum on", agreed, "stopped:", res.Reason) // after 3 or 4 replies
	// Output: quorum on v7 stopped: condition met
}

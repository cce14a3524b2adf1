// The example pkg.go.dev shows first: two members of a queue group share
// the requests, and one leaves by draining.

package queue_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/queue"
)

// natsURL is the server the examples connect to: NATS_URL, or nats.go's
// default.
func natsURL() string {
	if url := os.Getenv("NATS_URL"); url != "" {
		return url
	}
	return nats.DefaultURL
}

// Two members of the queue group "workers" share the requests on "work":
// each request goes to one of them, picked at random. Once one leaves (a
// drain: what it took is answered first), the other gets every request.
func Example() {
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	// Two members, each answering with its name and counting its requests.
	var a, b atomic.Int64
	ma, err := queue.Join(nc, "work", "workers", func(m *nats.Msg) { a.Add(1); _ = m.Respond([]byte("a")) })
	if err != nil {
		fmt.Println(err)
		return
	}
	mb, err := queue.Join(nc, "work", "workers", func(m *nats.Msg) { b.Add(1); _ = m.Respond([]byte("b")) })
	if err != nil {
		fmt.Println(err)
		return
	}

	// Ten requests, each answered by exactly one member.
	for range 10 {
		if _, err := nc.Request("work", nil, time.Second); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println(a.Load()+b.Load(), "requests, one member each")

	// a leaves; b answers the rest.
	if err := ma.Leave(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	for range 3 {
		reply, err := nc.Request("work", nil, time.Second)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Print(string(reply.Data), " ")
	}
	fmt.Println()
	_ = mb.Leave(context.Background())
	// Output:
	// 10 requests, one member each
	// b b b
}

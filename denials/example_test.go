package denials_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/denials"
)

// natsURL is the server the examples connect to: NATS_URL, or nats.go's
// default.
func natsURL() string {
	if url := os.Getenv("NATS_URL"); url != "" {
		return url
	}
	return nats.DefaultURL
}

// A request made with nats.go's own call, opted into prompt denials: were
// the publish to greet.joe, or the subscription of nats.go's response
// inbox, denied by the server's permissions, the request would end within
// one round trip with that denial instead of at its 2 s timeout. Allowed
// here, it is answered as it would be without.
func ExampleContext() {
	nc, err := nats.Connect(natsURL(), denials.Option())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	_, err = nc.Subscribe("greet.joe", func(m *nats.Msg) { _ = m.Respond([]byte("hello, joe")) })
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rctx, stop := denials.Context(ctx, nc, "greet.joe")
	defer stop()
	reply, err := nc.RequestWithContext(rctx, "greet.joe", nil)
	if err := denials.Err(rctx, err); err != nil {
		if errors.Is(err, denials.ErrDenied) {
			fmt.Println("denied:", err) // names the subject
			return
		}
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply.Data))
	// Output: hello, joe
}

// A responder that must not serve nothing: its subscription is confirmed
// (one flush), and a subscription the server's permissions deny fails at
// once, naming the subject and queue group.
func ExampleSubscribeChecked() {
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sub, err := denials.SubscribeChecked(ctx, nc, "work", "workers", func() (*nats.Subscription, error) {
		return nc.QueueSubscribe("work", "workers", func(m *nats.Msg) { _ = m.Respond([]byte("done")) })
	})
	if err != nil {
		fmt.Println(err) // errors.Is(err, nats.ErrPermissionViolation) for a denial
		return
	}
	defer func() { _ = sub.Drain() }()
	reply, err := nc.Request("work", nil, 2*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply.Data))
	// Output: done
}

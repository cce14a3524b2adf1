// The example pkg.go.dev shows first: a charge served through the
// middleware over a key-value bucket, and a request sent three times with
// one key.

package idempotent_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"reqreply/idempotent"
)

// natsURL is the server to connect to: NATS_URL, else nats.DefaultURL.
func natsURL() string {
	if url := os.Getenv("NATS_URL"); url != "" {
		return url
	}
	return nats.DefaultURL
}

// A charge, made safe to retry: the handler runs once for the key, and the
// two copies sent after the first get its stored reply. The claim and the
// reply live in a JetStream key-value bucket, so every member of a queue
// group sees them.
func ExampleMiddleware() {
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// The bucket: keys kept 10 minutes, longer than any caller retries.
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "example_charges", TTL: 10 * time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = js.DeleteKeyValue(context.Background(), "example_charges") }()

	// The responder: the handler returns its reply for the middleware to
	// store.
	charges := 0
	mw := idempotent.New(idempotent.NewKV(kv), func(m *nats.Msg) *nats.Msg {
		charges++
		return &nats.Msg{Data: fmt.Appendf(nil, "charged %s", m.Data)}
	}, idempotent.Options{})
	sub, err := nc.QueueSubscribe("charge", "payments", mw.ServeMsg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Unsubscribe()

	// The requester: one request, one key, sent three times (a retry after
	// a lost reply would send it again just so).
	req := idempotent.NewRequest("charge", []byte("10.00"))
	for range 3 {
		reply, err := nc.RequestMsgWithContext(ctx, req)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s (replayed: %q)\n", reply.Data, reply.Header.Get(idempotent.ReplayedHeader))
	}
	fmt.Println("charges:", charges)
	// Output:
	// charged 10.00 (replayed: "")
	// charged 10.00 (replayed: "true")
	// charged 10.00 (replayed: "true")
	// charges: 1
}

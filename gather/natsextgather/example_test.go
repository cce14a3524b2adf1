// The Example: natsext's RequestMany behind gather's options and Result.

package natsextgather_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/gather"
	"reqreply/gather/natsextgather"
)

// A gather through orbit.go's natsext: the same options, stop reasons and
// Result as gather's own variants.
func ExampleNatsext() {
	url := os.Getenv("NATS_URL")
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Drain()
	for _, name := range []string{"r1", "r2"} {
		if _, err := nc.Subscribe("greet.natsext", func(m *nats.Msg) { _ = m.Respond([]byte(name)) }); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := nc.Flush(); err != nil {
		fmt.Println(err)
		return
	}

	v := natsextgather.Natsext{Conn: nc}
	res, err := gather.Gather(context.Background(), v, "greet.natsext", nil,
		gather.Timeout(time.Second), gather.MaxReplies(2))
	fmt.Println(v.Name()+":", res.Count, "replies, stopped:", res.Reason, err)
	// Output: natsext: 2 replies, stopped: max reached <nil>
}

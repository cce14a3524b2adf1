// The Example: the lines a user copies. It imports only the standard
// library, nats.go and msgtrace, and connects to NATS_URL (main_test.go
// starts a server and sets it).

package msgtrace_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/msgtrace"
)

// One traced request: the reply comes as usual, and the server's report
// says where the request entered and which subscription it went to.
func ExampleTrace_Collect() {
	url := os.Getenv("NATS_URL")
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := nats.Connect(url, nats.Name("example"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Drain()
	if _, err := nc.Subscribe("greet.*", func(m *nats.Msg) { _ = m.Respond([]byte("hello")) }); err != nil {
		fmt.Println(err)
		return
	}

	tr, err := msgtrace.Start(nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	reply, err := nc.RequestMsgWithContext(ctx, tr.Msg(nats.NewMsg("greet.joe")))
	if err != nil {
		fmt.Println(err)
		return
	}
	tree, err := tr.Collect(ctx, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("reply:", string(reply.Data))
	in := tree.Root().Ingress()
	fmt.Println("in:", in.Kind, in.Name, in.Subject)
	for _, e := range tree.Root().Egresses() {
		fmt.Println("out:", e.Kind, e.Name, e.Sub)
	}
	fmt.Println("servers:", len(tree.Servers()), "complete:", tree.Complete())
	// Output:
	// reply: hello
	// in: client example greet.joe
	// out: client example greet.*
	// servers: 1 complete: true
}

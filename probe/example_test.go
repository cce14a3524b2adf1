package probe_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"reqreply/probe"
)

// natsURL is the server the examples connect to: NATS_URL, or nats.go's
// default.
func natsURL() string {
	if url := os.Getenv("NATS_URL"); url != "" {
		return url
	}
	return nats.DefaultURL
}

// A responder wrapped with the probe middleware, and a requester that
// waits until the responder's interest has reached its own server before
// its first real request. On a cluster the two may be on different
// servers; the wait is the same.
func ExampleHandler() {
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	// The responder: a plain handler, wrapped so that a probe is answered
	// with the responder's name and never reaches it.
	greet := func(m *nats.Msg) { _ = m.Respond([]byte("hello")) }
	if _, err := nc.Subscribe("greet", probe.Handler("greeter-1", greet)); err != nil {
		fmt.Println(err)
		return
	}

	// The requester: probe until greeter-1 answers, then ask.
	p, err := probe.Await(context.Background(), nc, "greet", probe.AllOf("greeter-1"), 2*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ready:", p.Seen)
	reply, err := nc.Request("greet", nil, 2*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply.Data))
	// Output:
	// ready: [greeter-1]
	// hello
}

// A nats.go/micro endpoint answers probes the same way; a wait that is
// Settled lets every probe be answered before the endpoint's stats, which
// count the probes, are reset.
func ExampleMicroHandler() {
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	hello := micro.HandlerFunc(func(req micro.Request) { _ = req.Respond([]byte("hello")) })
	svc, err := micro.AddService(nc, micro.Config{
		Name:     "greeter",
		Version:  "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: "greet.micro", Handler: probe.MicroHandler("greeter-1", hello)},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = svc.Stop() }()

	if _, err := probe.Await(context.Background(), nc, "greet.micro", probe.AnyResponder().Settled(), 2*time.Second); err != nil {
		fmt.Println(err)
		return
	}
	svc.Reset()
	reply, err := nc.Request("greet.micro", nil, 2*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply.Data), svc.Stats().Endpoints[0].NumRequests)
	// Output: hello 1
}

// After the responders leave, AwaitNone waits until their interest is gone
// from the requester's server: a request then gets no responders at once.
func ExampleAwaitNone() {
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	sub, err := nc.Subscribe("leaving", probe.Handler("leaver", func(m *nats.Msg) { _ = m.Respond(nil) }))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := sub.Unsubscribe(); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := probe.AwaitNone(context.Background(), nc, "leaving", 2*time.Second); err != nil {
		fmt.Println(err)
		return
	}
	_, err = nc.Request("leaving", nil, 2*time.Second)
	fmt.Println(err)
	// Output: nats: no responders available for request
}

// The examples pkg.go.dev shows first: a traced request to a traced
// responder, and a traced gather; checked by go test against the server
// TestMain starts (NATS_URL). A program sets its providers once, with
// otel.SetTracerProvider and otel.SetMeterProvider, and uses the package
// functions; these make their own, to print what was recorded.

package otelnats_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"reqreply/gather"
	"reqreply/otelnats"
)

// natsURL is the server to connect to: NATS_URL, else nats.DefaultURL.
func natsURL() string {
	if url := os.Getenv("NATS_URL"); url != "" {
		return url
	}
	return nats.DefaultURL
}

// A request in a client span, and the responder's handling of it in a
// server span of the same trace: the request carries the trace context in
// its headers (traceparent), and Handler continues it.
func ExampleTelemetry_Request() {
	spans := tracetest.NewSpanRecorder()
	tel, err := otelnats.New(otelnats.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))))
	if err != nil {
		fmt.Println(err)
		return
	}
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	// The responder: its handler wrapped by Handler; handled says its span
	// has ended.
	handled := make(chan struct{}, 1)
	greet := tel.Handler(func(m *nats.Msg) { _ = m.Respond([]byte("hello, joe")) })
	sub, err := nc.Subscribe("example.greet.joe", func(m *nats.Msg) {
		greet(m)
		handled <- struct{}{}
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = sub.Unsubscribe() }()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	msg, err := tel.Request(ctx, nc, "example.greet.joe", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	<-handled
	fmt.Println(string(msg.Data))
	ended := spans.Ended()
	var names []string
	for _, s := range ended {
		names = append(names, s.Name()+" "+s.SpanKind().String())
	}
	slices.Sort(names) // the two spans end in either order
	fmt.Println(names[0])
	fmt.Println(names[1])
	fmt.Println("one trace:", ended[0].SpanContext().TraceID() == ended[1].SpanContext().TraceID())
	// Output:
	// hello, joe
	// process example.greet.joe server
	// request example.greet.joe client
	// one trace: true
}

// A gather in one span, with an event per reply naming its responder, and
// its stop reason and counts at its end.
func ExampleTelemetry_Gather() {
	spans := tracetest.NewSpanRecorder()
	tel, err := otelnats.New(otelnats.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))))
	if err != nil {
		fmt.Println(err)
		return
	}
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	for _, name := range []string{"r1", "r2", "r3"} {
		if _, err := nc.Subscribe("example.all", func(m *nats.Msg) {
			_ = m.RespondMsg(&nats.Msg{Data: []byte(name), Header: nats.Header{gather.ResponderHeader: {name}}})
		}); err != nil {
			fmt.Println(err)
			return
		}
	}

	res, err := tel.Gather(context.Background(), gather.Inbox{Conn: nc}, "example.all", []byte("hi"),
		gather.Timeout(time.Second), gather.MaxReplies(3))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Count, "replies, stopped:", res.Reason)
	span := spans.Ended()[0]
	var responders []string
	for _, e := range span.Events() {
		for _, kv := range e.Attributes {
			if kv.Key == otelnats.KeyResponder {
				responders = append(responders, kv.Value.AsString())
			}
		}
	}
	slices.Sort(responders) // replies come in any order
	fmt.Println(span.Name(), responders)
	for _, kv := range span.Attributes() {
		if kv.Key == otelnats.KeyStopReason || kv.Key == otelnats.KeyReplies {
			fmt.Println(kv.Key, "=", kv.Value.Emit())
		}
	}
	// Output:
	// 3 replies, stopped: max reached
	// gather example.all [r1 r2 r3]
	// reqreply.gather.stop_reason = max reached
	// reqreply.gather.replies = 3
}

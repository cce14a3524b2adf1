// The examples pkg.go.dev shows first: a responder that answers with an
// error reply and a requester reading it, and a handler wrapped in the
// recovery middleware.

package respond_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/respond"
)

// natsURL is the server to connect to: NATS_URL, else nats.DefaultURL.
func natsURL() string {
	if url := os.Getenv("NATS_URL"); url != "" {
		return url
	}
	return nats.DefaultURL
}

// A responder answers a request it cannot serve with an error reply; the
// requester reads it as a *respond.ServiceError, at once, instead of
// waiting out its timeout.
func ExampleError() {
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	// The responder: an error reply, with a code of its own, for nobody.
	sub, err := nc.Subscribe("hello.*", func(m *nats.Msg) {
		name := strings.TrimPrefix(m.Subject, "hello.")
		if name == "nobody" {
			_ = respond.Error(m, &respond.ServiceError{Code: "404", Description: "nobody to greet"})
			return
		}
		_ = m.Respond([]byte("hello, " + name))
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Unsubscribe()

	// The requester: nats.go's request, then respond.ErrorOf on the reply.
	for _, name := range []string{"joe", "nobody"} {
		msg, err := nc.Request("hello."+name, nil, time.Second)
		if err == nil {
			err = respond.ErrorOf(msg)
		}
		var serr *respond.ServiceError
		switch {
		case errors.As(err, &serr):
			fmt.Printf("error reply: code %s, %q\n", serr.Code, serr.Description)
		case err != nil:
			fmt.Println(err)
		default:
			fmt.Println(string(msg.Data))
		}
	}
	// Output:
	// hello, joe
	// error reply: code 404, "nobody to greet"
}

// A handler wrapped in respond.Recover: its panic becomes an error reply
// with code 500, and the subscription goes on serving.
func ExampleRecover() {
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	panics := make(chan error, 1)
	handler := func(m *nats.Msg) {
		if string(m.Data) == "divide by zero" {
			panic("cannot divide by zero")
		}
		_ = m.Respond([]byte("ok"))
	}
	sub, err := nc.Subscribe("calc", respond.Recover(handler, func(_ *nats.Msg, err error) {
		panics <- err
	}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Unsubscribe()

	for _, data := range []string{"divide by zero", "add"} {
		msg, err := nc.Request("calc", []byte(data), time.Second)
		if err == nil {
			err = respond.ErrorOf(msg)
		}
		switch {
		case err != nil:
			fmt.Println(err)
			fmt.Println("the responder was told:", <-panics)
		default:
			fmt.Println(string(msg.Data))
		}
	}
	// Output:
	// service error 500: handler panicked: cannot divide by zero
	// the responder was told: handler panicked: cannot divide by zero
	// ok
}

// The deadline middleware's Example: a micro endpoint that gets its
// caller's deadline as a context, and refuses a request already expired.

package hedge_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"reqreply/hedge"
)

// A micro endpoint behind DeadlineMicroHandler: its handler's context ends
// when the caller stops waiting. The caller passes its context's deadline
// on with SetContextDeadline (both headers), and a request whose deadline
// has passed gets an error reply with ExpiredCode, without the handler
// running.
func ExampleDeadlineMicroHandler() {
	nc, err := nats.Connect(natsURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	svc, err := micro.AddService(nc, micro.Config{Name: "report", Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: "report.deadline", Handler: hedge.DeadlineMicroHandler(context.Background(),
			func(ctx context.Context, req micro.Request) {
				deadline, ok := ctx.Deadline()
				_ = req.Respond(fmt.Appendf(nil, "deadline: %v, within a second: %v", ok, time.Until(deadline) <= time.Second))
			})}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = svc.Stop() }()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	msg := nats.NewMsg("report.deadline")
	hedge.SetContextDeadline(ctx, msg) // both headers: the absolute deadline and the budget left
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply.Data))

	late := nats.NewMsg("report.deadline")
	hedge.SetBudget(late, time.Now().Add(-time.Second), time.Now()) // its caller gave up a second ago
	reply, err = nc.RequestMsgWithContext(ctx, late)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("expired:", reply.Header.Get(micro.ErrorCodeHeader))
	// Output:
	// deadline: true, within a second: true
	// expired: 504
}

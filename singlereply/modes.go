// The halves apart: -serve keeps the greeter serving until interrupted,
// for a -request run (or the nats CLI) elsewhere.

package main

import (
	"context"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"

	"reqreply/internal/cli"
)

// serve is the -serve half, once the greeter serves on svc: it says what
// it serves and where (nodes), and serves until ctx ends, or until svc is
// closed for good (the error then wraps cli.ErrConnectionLost).
func serve(ctx context.Context, env *cli.Env, svc *nats.Conn, nodes []string, w io.Writer) error {
	fmt.Fprintf(w, "serving %s on %s until interrupted\n", GreetSubjects, cli.Redact(env.URL))
	cli.WriteNodes(w, env, nodes...)
	if !svc.HeadersSupported() {
		fmt.Fprintln(w, "the server does not support headers: a request whose handler fails gets no error reply and times out")
	}
	return cli.WaitForInterrupt(ctx)
}

// logFailure returns the greeter's Failed: a handler failure is reported on
// env's stderr, with the request's subject; the requester got an error
// reply (unless none could be sent).
func logFailure(env *cli.Env) func(subject string, err error) {
	return func(subject string, err error) {
		env.Logf("%s service: %s: %v", env.Scenario, subject, err)
	}
}

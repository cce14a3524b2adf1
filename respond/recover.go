// Panic recovery as middleware: a handler that panics answers with an error
// reply, and the responder goes on serving.

package respond

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// ErrPanic is wrapped by the error Recover makes of a handler's panic; its
// error reply's description reads "handler panicked: <the panic's value>".
var ErrPanic = errors.New("handler panicked")

// Recover returns h wrapped so that a panic in h does not end the program
// (nats.go calls a subscription's handler on its own goroutine, where a
// panic would): it is recovered, and the request is answered with an error
// reply (Error) with code "500" and the description "handler panicked:
// <value>", so the requester learns of it at once instead of waiting out
// its timeout. The subscription goes on delivering the next messages to h.
//
// failed, if not nil, is told of each recovered panic, with the message and
// an error wrapping ErrPanic; when no error reply could be sent (a plain
// publish with no reply subject, a server without header support, a closed
// connection) the error also wraps why (nats.ErrMsgNoReply,
// nats.ErrHeadersNotSupported, ...). It is called on the handler's
// goroutine, after the error reply was sent.
//
// A panic after h has already answered still sends the error reply; the
// requester, holding the first reply, does not see it.
func Recover(h nats.MsgHandler, failed func(m *nats.Msg, err error)) nats.MsgHandler {
	return func(m *nats.Msg) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			err := fmt.Errorf("%w: %v", ErrPanic, r)
			if rerr := Error(m, err); rerr != nil {
				err = fmt.Errorf("%w; no error reply sent: %w", err, rerr)
			}
			if failed != nil {
				failed(m, err)
			}
		}()
		h(m)
	}
}

// Error replies: what a responder sends instead of an answer when its
// handler fails, and how the requester tells one from an answer.

package respond

import (
	"cmp"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// ServiceError is an error reply: what a responder sends instead of an
// answer when its handler fails, in the headers nats.go's micro package
// uses (micro.ErrorHeader, micro.ErrorCodeHeader). A handler may return one
// to choose its code (Error sends it as it is); ErrorOf returns one for an
// error reply received.
type ServiceError struct {
	// Code is the Nats-Service-Error-Code header: "500" for a panic or a
	// plain error, or the handler's own (often an HTTP-like status).
	Code string
	// Description is the Nats-Service-Error header.
	Description string
}

// Error says "service error <code>: <description>".
func (e *ServiceError) Error() string {
	return "service error " + e.Code + ": " + e.Description
}

// Error sends m's requester the error reply for err (ErrorMsg): no payload,
// and the headers Nats-Service-Error (the description) and
// Nats-Service-Error-Code (the code), as micro services answer a failed
// request. The code is "500" and the description err.Error(), unless err is
// (or wraps, errors.As) a *ServiceError, whose own code and description are
// sent. Neither is sent empty: an empty code is "500", an empty description
// "code <code>", so that the requester never takes the reply for an answer.
//
// The reply goes through m.RespondMsg, so m must come from a subscription.
// Errors: nats.ErrMsgNotBound (m has no subscription), nats.ErrMsgNoReply (m
// is a plain publish, with no reply subject), nats.ErrHeadersNotSupported
// (the server has no header support, nats-server before 2.2 or headers
// turned off: an error reply cannot be sent, and a plain one could not be
// told from an answer, so the requester will time out), and nats.go's
// publish errors (nats.ErrConnectionClosed, ...).
func Error(m *nats.Msg, err error) error {
	return m.RespondMsg(ErrorMsg(err))
}

// ResponderHeader is the reply header in which a responder names itself:
// "Responder", the header a gather reads into its Reply.Responder and
// matches against its expected set (gather.ResponderHeader, Expect).
const ResponderHeader = "Responder"

// ErrorAs is Error from the responder named name: the error reply also
// carries ResponderHeader: name, so that a gather that expects name counts
// it as answered (an error reply is an answer). An empty name is Error.
// Errors: Error's.
func ErrorAs(m *nats.Msg, name string, err error) error {
	reply := ErrorMsg(err)
	if name != "" {
		reply.Header.Set(ResponderHeader, name)
	}
	return m.RespondMsg(reply)
}

// ErrorMsg returns the error reply for err, with no subject and no payload,
// for a responder that sends it itself (m.RespondMsg, or more than once):
// the headers Nats-Service-Error and Nats-Service-Error-Code, set as Error
// describes.
func ErrorMsg(err error) *nats.Msg {
	code, description := "500", ""
	var serr *ServiceError
	switch {
	case errors.As(err, &serr):
		if serr != nil { // not a nil *ServiceError
			code, description = cmp.Or(serr.Code, code), serr.Description
		}
	case err != nil:
		description = err.Error()
	}
	// Neither header may be empty: the requester (ErrorOf, micro's
	// clients) would read the reply as an answer.
	description = cmp.Or(description, "code "+code)
	reply := &nats.Msg{Header: nats.Header{}}
	reply.Header.Set(micro.ErrorHeader, description)
	reply.Header.Set(micro.ErrorCodeHeader, code)
	return reply
}

// ErrorOf returns the error reply in msg as a *ServiceError, or nil if msg
// is an answer: it is one when either header, micro.ErrorHeader or
// micro.ErrorCodeHeader, is set. Use it on the reply of a request that
// succeeded:
//
//	msg, err := nc.Request(subject, data, timeout)
//	if err == nil {
//		err = respond.ErrorOf(msg)
//	}
func ErrorOf(msg *nats.Msg) error {
	description, code := msg.Header.Get(micro.ErrorHeader), msg.Header.Get(micro.ErrorCodeHeader)
	if description == "" && code == "" {
		return nil
	}
	return &ServiceError{Code: code, Description: description}
}

// IsNoResponders reports whether msg is the server's no-responders status:
// no payload and the header "Status: 503". nats-server sends it to the reply
// subject of a request whose subject has no subscribers, to clients that
// announce headers and no_responders support (nats.go does whenever the
// server supports headers). nats.go's own request calls turn it into
// nats.ErrNoResponders; a requester reading replies from a subscription of
// its own (a shared inbox, a gather) sees the raw message and tells it with
// this.
func IsNoResponders(msg *nats.Msg) bool {
	return len(msg.Data) == 0 && msg.Header.Get("Status") == "503"
}

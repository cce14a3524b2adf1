// Package respond holds the small helpers both sides of a NATS request-reply
// share, written once: the responder's error reply, in the headers nats.go's
// micro package uses (Error; ErrorAs names the responder in
// ResponderHeader, as a gather that expects it reads it), with panic recovery as middleware around a
// plain nats.MsgHandler (Recover); and the requester's reading of a reply
// (ErrorOf, ServiceError, IsNoResponders), its subject check before sending
// (CheckSubject) and what to say when a request timed out (WhyNoReply).
//
// It imports only the standard library and github.com/nats-io/nats.go (with
// its micro subpackage, for the header names), so its directory can be
// copied alone into another module.
//
// A responder:
//
//	sub, err := nc.Subscribe("greet.*", respond.Recover(func(m *nats.Msg) {
//		name := strings.TrimPrefix(m.Subject, "greet.")
//		if name == "nobody" {
//			_ = respond.Error(m, &respond.ServiceError{Code: "400", Description: "nobody to greet"})
//			return
//		}
//		_ = m.Respond([]byte("hello, " + name))
//	}, nil))
//
// A requester:
//
//	msg, err := nc.Request("greet.joe", nil, time.Second)
//	if err == nil {
//		err = respond.ErrorOf(msg) // nil, or a *ServiceError
//	}
package respond

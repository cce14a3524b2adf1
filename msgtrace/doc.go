// Package msgtrace asks nats-server where a request went: its own message
// tracing (ADR-41, nats-server 2.11 and later). A request published with
// the Nats-Trace-Dest header (DestHeader) makes every server it passes
// publish a Report to that subject: where the message entered (the
// publisher's connection, account and subject), and each connection it
// sent the message on: a client's (a responder, a queue group member), or
// a route, gateway or leaf connection to the next server, which reports
// in turn. The hop header (HopHeader) links each crossing to the next
// server's report; a Tree draws them.
//
// Start subscribes to a fresh inbox of the trace's own, never the
// connection's response mux, so a report is never taken for a reply; Msg
// (or Header) marks the request, which is then sent with nats.go's own
// call (nc.RequestMsgWithContext, or a gather with gather.Header) and
// delivered as usual; Collect gathers the reports until every hop has
// reported, a quiet gap, or the context's end, and unsubscribes.
//
// A report reaches the trace's inbox only where the inbox's interest has: a
// route or leaf connection carries the subscription before the request, but
// nats-server's gateways run the global account in interest-only mode, and
// the interest crosses them on other connections than the request. A
// report from another cluster can then be dropped; the Tree says which hop
// sent none (Tree.Missing). Wait for the interest where you can see it
// (Trace.Dest names the subject) before sending the request.
//
// The package imports only the standard library and nats.go; its JSON
// types are its own small copies of nats-server's MsgTraceEvent.
package msgtrace

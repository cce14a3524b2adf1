// Package probe holds readiness probes: how a requester learns that its
// responders' interest has reached its own server before it sends its
// first real request, with only what a client can see.
//
// On one server, a responder's Flush is enough. On a cluster, a leaf node
// or a supercluster, interest travels to the other servers on its own
// time, and a request sent there too early gets no responders. A probe is
// a request marked with Header, sent on the responders' own subject: a
// responder wrapped with Handler (or MicroHandler, or one that calls
// Answer first) answers it at once with its name, and the requester's
// Await keeps probing until the answers meet a Want (AnyResponder, AllOf,
// AnyOf). AwaitNone waits the other way, until interest has gone.
//
// A denied probe, inbox or answer ends a wait within one round trip when
// Checks are installed (UseChecks; reqreply/denials provides them);
// without them it waits out its timeout. The package imports only the
// standard library, nats.go and nats.go/micro, and can be copied alone.
package probe

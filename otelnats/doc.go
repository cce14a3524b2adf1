// Package otelnats is OpenTelemetry for the suite's request-reply: trace
// context in NATS headers, spans following OpenTelemetry's messaging
// semantic conventions, and metrics, for nats.go's own request, the
// scatter-gather of package gather, the hedged requests and admission
// control of package hedge, and responders (a plain nats.MsgHandler or a
// micro.Handler).
//
// It wraps those packages from outside, as otelhttp wraps net/http: the
// pattern packages import only nats.go, and keep working, copied alone,
// without it.
//
// Context propagation. HeaderCarrier makes a nats.Header a
// propagation.TextMapCarrier, so W3C traceparent, tracestate and baggage
// travel in the request's headers. Requesters inject the context into every
// copy they send (a request, a gather, each hedge and retry); responders
// extract it and continue the trace.
//
// Spans (messaging.system=nats, messaging.destination.name the subject,
// messaging.operation.type and name):
//   - "request <subject>", client: one request (Telemetry.Request);
//   - "gather <subject>", client: one gather, an event per reply (the
//     responder and its arrival offset) and its stop reason and counts
//     (Telemetry.Gather, Telemetry.Variant);
//   - "hedged request <subject>", with a "send <subject>" child per copy,
//     first, hedge or retry, marked won or not (Telemetry.HedgeObserver);
//   - "process <subject>", server: a responder's handling of a request
//     (Telemetry.Handler, Telemetry.MicroHandler).
//
// Every span that ends in an error has error status and error.type:
// no_responders, timeout, denied, cancelled, closed, or the service error's
// code.
//
// Free when off. With the global no-op providers (nothing set), each wrapper
// checks that first and calls the wrapped code directly: no span, no
// attribute, no allocation, no clock read.
//
// The package-level functions use Default, built from the global providers;
// New takes other ones.
package otelnats

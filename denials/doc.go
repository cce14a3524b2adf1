// Package denials makes the server's permission denials prompt and clear,
// for a caller that opts in.
//
// nats-server answers a denied publish or subscription with an -ERR
// ("Permissions Violation for Publish to "svc.a"") and nothing else.
// nats.go hands it to the connection's async error handler only, so a
// request waiting for its reply waits out its timeout, and one denied
// subscription of nats.go's response mux makes every later request on the
// connection time out. This package chains a dispatcher in front of the
// connection's error handler (Option at connect, or Rehook later; the
// handler behind it still gets every error) that hands each violation to
// the call waiting for that subject, so that call ends within one round
// trip with an error wrapping nats.ErrPermissionViolation and ErrDenied and
// naming the subject.
//
// Ways to opt in:
//   - Context, for nats.go's own request: pass its context to
//     nc.RequestWithContext or nc.RequestMsgWithContext, and Err turns the
//     ended request's error into the denial;
//   - Request: a request with an inbox of its own, which also ends on the
//     refusal of a reserved reply subject;
//   - SubscribeChecked and PublishChecked: a subscription or publish
//     confirmed by a flush, for a responder that must not serve nothing;
//   - Watch: a callback for a pattern with its own subscriptions and
//     publishes (a scatter-gather, a load);
//   - Claimed, for an error handler that logs: whether a call returned the
//     violation, so it is reported once;
//   - ProbeChecks, for package probe's waits (probe.UseChecks).
//
// The dispatcher is process-wide and bounded by what is in flight. It
// imports only the standard library and nats.go.
package denials

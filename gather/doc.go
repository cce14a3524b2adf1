// Package gather is scatter-gather over NATS: publish one request, collect
// the replies of every responder until a stop condition, and say why it
// stopped.
//
// A gather stops at the first of: its deadline (Timeout, or the context's),
// MaxReplies replies, a Stall or AdaptiveStall gap after a reply, a Sentinel
// message, the last of the responders it Expects (micro instances from
// Discover), a StopWhen predicate over the replies so far (a quorum), the
// caller breaking out of its loop; or with an error: no responders
// (nats.ErrNoResponders), a cancel, a closed or draining connection, a
// failed publish. Result says which (StopReason) and counts what arrived:
// every message that reaches a gather is counted once, as a reply, skipped,
// dropped or unread.
//
// Gather collects every reply; a Stream hands them out as they arrive.
// Both run on a Variant:
//   - Inbox, the teaching version: a fresh inbox per request, subscribed,
//     flushed, then the request; a SUB, a round trip and an UNSUB each.
//   - Mux (NewMux), the production version: one wildcard inbox subscription
//     on a connection of its own; each gather is one publish with a token
//     of its own, and survives a drain of the caller's connection.
//   - natsextgather.Natsext, in a package of its own so that this one does
//     not import orbit.go: Synadia's natsext.RequestMany behind the same
//     options and Result.
//
// Permission denials are opt-in: give a Denials hook (Inbox.Denials,
// WithDenials) and a denied publish or inbox subscription ends the gather
// within one round trip; without one it ends at its deadline, as plain
// nats.go would.
//
// The package imports only the standard library and nats.go (and
// nats.go/micro for its error headers): its directory can be copied alone
// into another module.
package gather

// Package natsextgather is the scatter-gather of Synadia's orbit.go natsext
// package (RequestManyMsg) as a gather.Variant, Natsext: the same options,
// stop reasons and Result as gather's Inbox and Mux, and where it differs
// (see Natsext).
//
// It is a package of its own so that importing gather does not pull in
// orbit.go; its name says what it joins, natsext to gather, as otelhttp
// joins OpenTelemetry to net/http. It imports the standard library,
// nats.go, orbit.go's natsext and gather, and builds its Stream from what
// gather exports for Variants outside it (Prepare, NewStream, Discard).
package natsextgather

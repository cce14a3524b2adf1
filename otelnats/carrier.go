// Trace context in NATS headers: nats.Header as a TextMapCarrier, and the
// inject and extract that use it.

package otelnats

import (
	"context"
	"net/textproto"
	"strings"

	"github.com/nats-io/nats.go"
)

// HeaderCarrier makes a nats.Header a propagation.TextMapCarrier, for
// W3C traceparent, tracestate and baggage (nats.go issue #1867: nats.Header
// is not one). A nats.Header is a case-sensitive map, while the W3C keys
// are lower case and HTTP-minded senders write them canonical
// ("Traceparent"): Get finds the key as given, then its canonical form, then
// any spelling of it; Set writes it as given and removes its other
// spellings, so that a header carries one trace context.
type HeaderCarrier nats.Header

// Get returns the first value of key, "" if there is none.
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	if v := c[textproto.CanonicalMIMEHeaderKey(key)]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// Set sets key to value, replacing its value in any spelling of key (a
// stale "Traceparent" goes when "traceparent" is set).
func (c HeaderCarrier) Set(key, value string) {
	for k := range c {
		if k != key && strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
	c[key] = []string{value}
}

// Keys lists the keys of the header.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the trace context and baggage of ctx into h, with the
// Telemetry's propagator. h must not be nil.
func (t *Telemetry) Inject(ctx context.Context, h nats.Header) {
	t.propagator().Inject(ctx, HeaderCarrier(h))
}

// Extract returns ctx with the trace context and baggage h carries, with
// the Telemetry's propagator: a span started from it continues the
// sender's trace. A nil h returns ctx.
func (t *Telemetry) Extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return t.propagator().Extract(ctx, HeaderCarrier(h))
}

// Inject is Default().Inject.
func Inject(ctx context.Context, h nats.Header) { Default().Inject(ctx, h) }

// Extract is Default().Extract.
func Extract(ctx context.Context, h nats.Header) context.Context {
	return Default().Extract(ctx, h)
}

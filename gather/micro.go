// The expected set of a nats.go/micro service: its instance ids from
// discovery ($SRV.PING.<name>, itself a gather), and an endpoint handler
// wrapper whose replies name their instance.

package gather

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// DiscoverStall is the stall gap of Discover's gather when it is given no
// options: 100 ms. Every instance answers PING from its own subscription,
// at about the same time, so discovery ends once the answers stop coming.
const DiscoverStall = 100 * time.Millisecond

// Discover returns, sorted, the instance ids of the running instances of
// the micro service named service: a gather on $SRV.PING.<service> through
// v, which every instance answers with a micro.Ping (its name, id and
// version, as JSON). opts are the gather's (Timeout, Stall, MaxReplies...);
// without any it stops after DiscoverStall without a new answer, or at
// DefaultTimeout. Hand the ids to Expect to gather from that exact set.
// Errors: the gather's (see Gather: nats.ErrNoResponders when no instance
// runs, nats.ErrInvalidArg for a bad option, nats.ErrBadSubject for a
// service name that makes no valid subject), or one for an answer that is
// not a micro.Ping of the service.
func Discover(ctx context.Context, v Variant, service string, opts ...Option) ([]string, error) {
	subject, err := micro.ControlSubject(micro.PingVerb, service, "")
	if err != nil {
		return nil, fmt.Errorf("discover %q: %w: %w", service, err, nats.ErrInvalidArg)
	}
	if len(opts) == 0 {
		opts = []Option{Stall(DiscoverStall)}
	}
	res, err := Gather(ctx, v, subject, nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("discover %q: %w", service, err)
	}
	ids := make([]string, 0, res.Count)
	for _, r := range res.Replies {
		var ping micro.Ping
		if err := json.Unmarshal(r.Msg.Data, &ping); err != nil || ping.ID == "" || ping.Name != service {
			return nil, fmt.Errorf("discover %q: an answer on %s is not a PING response of the service: %q", service, subject, r.Msg.Data)
		}
		ids = append(ids, ping.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// Identify wraps a micro endpoint's handler so that every reply it sends
// (Respond, RespondJSON, Error) carries ResponderHeader ("Responder"): id.
// micro sets no such header of its own; with id the service instance's id
// (svc.Info().ID, what Discover returns), an Expect gather on the endpoint
// knows which instance answered. The id exists once the service does, so
// add the endpoint after micro.AddService, with svc.AddEndpoint, and
// without a queue group (micro.WithEndpointQueueGroupDisabled) for every
// instance to get each request.
func Identify(id string, h micro.Handler) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) { h.Handle(identified{Request: r, id: id}) })
}

// identified is a micro.Request whose replies carry ResponderHeader.
type identified struct {
	micro.Request
	id string
}

// with adds the header to the handler's own options: after them, so that
// it names this instance whatever they set.
func (r identified) with(opts []micro.RespondOpt) []micro.RespondOpt {
	return append(slices.Clip(opts), micro.WithHeaders(micro.Headers{ResponderHeader: []string{r.id}}))
}

// Respond is micro's Respond with ResponderHeader added.
func (r identified) Respond(data []byte, opts ...micro.RespondOpt) error {
	return r.Request.Respond(data, r.with(opts)...)
}

// RespondJSON is micro's RespondJSON with ResponderHeader added.
func (r identified) RespondJSON(v any, opts ...micro.RespondOpt) error {
	return r.Request.RespondJSON(v, r.with(opts)...)
}

// Error is micro's Error with ResponderHeader added.
func (r identified) Error(code, description string, data []byte, opts ...micro.RespondOpt) error {
	return r.Request.Error(code, description, data, r.with(opts)...)
}

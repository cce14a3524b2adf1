// Service discovery as scatter-gather: $SRV.PING and $SRV.INFO answered by
// every instance of a nats.go/micro service.

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"reqreply/gather"
)

// DiscoverService is the name of the micro service the -discover run starts.
const DiscoverService = "greeter"

// DiscoverStall is the stall gap of a discovery gather, gather's: 100 ms.
// The number of instances is not known in advance, so discovery stops when
// the answers stop coming, and at the deadline at the latest.
const DiscoverStall = gather.DiscoverStall

// StartGreeters starts one instance of the micro service DiscoverService on
// each connection (version 1.0.<i>), with one endpoint, "greet", answering
// "hello". Every instance subscribes to the $SRV.PING, $SRV.INFO and
// $SRV.STATS subjects without a queue group, so a request to them is answered
// by every instance: scatter-gather is how discovery works. Stop the
// instances with Stop (or by draining their connections).
func StartGreeters(conns []*nats.Conn) ([]micro.Service, error) {
	var svcs []micro.Service
	for i, nc := range conns {
		svc, err := micro.AddService(nc, micro.Config{
			Name:        DiscoverService,
			Version:     fmt.Sprintf("1.0.%d", i),
			Description: "says hello",
			Endpoint: &micro.EndpointConfig{
				Subject: DiscoverEndpoint,
				Handler: micro.HandlerFunc(func(r micro.Request) { _ = r.Respond([]byte("hello")) }),
			},
		})
		if err != nil {
			for _, s := range svcs {
				_ = s.Stop()
			}
			return nil, fmt.Errorf("start %s instance %d: %w", DiscoverService, i+1, err)
		}
		svcs = append(svcs, svc)
		if err := nc.FlushTimeout(nc.Opts.Timeout); err != nil {
			return nil, fmt.Errorf("start %s instance %d: flush: %w", DiscoverService, i+1, err)
		}
	}
	return svcs, nil
}

// Discover gathers the $SRV.PING and $SRV.INFO answers of every running
// instance of service through v and writes one line per instance: its id,
// version and endpoints, sorted by version. Each gather stops after
// DiscoverStall without a new answer, or at the deadline (timeout, > 0).
// Errors are the gather's (see Gather) or a JSON error for an answer that is
// not a micro.Ping or micro.Info.
func Discover(ctx context.Context, v gather.Variant, service string, timeout time.Duration, w io.Writer) error {
	// $SRV.PING.<name>: each instance answers with its identity.
	pingSubject, err := micro.ControlSubject(micro.PingVerb, service, "")
	if err != nil {
		return err
	}
	res, err := gather.Gather(ctx, v, pingSubject, nil, gather.Timeout(timeout), gather.Stall(DiscoverStall))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: %s, stopped: %s at %s\n", pingSubject, plural(res.Count, "answer", "answers"), res.Reason, round(res.Elapsed))

	// $SRV.INFO.<name>: each instance describes its endpoints.
	infoSubject, err := micro.ControlSubject(micro.InfoVerb, service, "")
	if err != nil {
		return err
	}
	res, err = gather.Gather(ctx, v, infoSubject, nil, gather.Timeout(timeout), gather.Stall(DiscoverStall))
	if err != nil {
		return err
	}
	infos := make([]micro.Info, 0, len(res.Replies))
	for _, r := range res.Replies {
		var info micro.Info
		if err := json.Unmarshal(r.Msg.Data, &info); err != nil {
			return fmt.Errorf("discover %q: answer is not a service info: %w", infoSubject, err)
		}
		infos = append(infos, info)
	}
	slices.SortFunc(infos, func(a, b micro.Info) int {
		return cmp.Or(cmp.Compare(a.Version, b.Version), cmp.Compare(a.ID, b.ID))
	})
	fmt.Fprintf(w, "%s: %s, stopped: %s at %s\n", infoSubject, plural(res.Count, "answer", "answers"), res.Reason, round(res.Elapsed))
	for _, info := range infos {
		var eps []string
		for _, ep := range info.Endpoints {
			eps = append(eps, fmt.Sprintf("%s (queue group %s)", ep.Subject, ep.QueueGroup))
		}
		fmt.Fprintf(w, "  %s %s  id %s  endpoints %v\n", info.Name, info.Version, info.ID, eps)
	}
	return nil
}

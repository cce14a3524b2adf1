// Where the connections go: the demo responders spread over the nodes of
// a cluster or a supercluster, the requester on another node, the wait for
// the responders' interest to reach it, and the locked-down setup (-secure).

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/internal/cli"
	"reqreply/probe"
)

// MaxResponderConns is the most connections the demo responders use: 100.
// Up to that many responders (the sentinel included), each has a
// connection of its own, as separate responder processes would; beyond it,
// responder i shares connection i mod 100.
const MaxResponderConns = 100

// ProbeTimeout bounds the requester's wait for the responders' interest
// (probe.Await) before the gather: 5 s. On one server the interest
// is there at once; across a route or a gateway it takes milliseconds.
const ProbeTimeout = 5 * time.Second

// DiscoverEndpoint is the subject of the greeter's one endpoint in the
// -discover run.
const DiscoverEndpoint = "greet"

// Lockdown is the program's -secure setup for cfg: the requester may
// publish only to DemoSubject, the micro control subjects ($SRV.>) and
// DiscoverEndpoint, and read only its own inbox prefix (cli.InboxPrefix);
// the responders may take only those requests and publish only replies
// (allow_responses), at most AllowResponses(RepliesPerConn()) per request
// and connection.
func (cfg *Config) Lockdown() cli.Lockdown {
	return cli.Lockdown{
		Service:    []string{DemoSubject, "$SRV.>", DiscoverEndpoint},
		MaxReplies: AllowResponses(cfg.RepliesPerConn()),
	}
}

// AllowResponses is the allow_responses max that lets one connection
// carrying k subscriptions to a request's subject send k replies to it:
// 2k-1. nats-server (v2.15, server/client.go, deliverMsg) counts the
// permission per connection and reply subject, and checks it again on
// each delivery of the request after the first, which counts as a use:
// with k subscriptions the deliveries take k-1 of the max before the
// first reply is sent. One responder per connection needs 1, the default
// of security/locked-down.conf.
func AllowResponses(k int) int { return max(2*k-1, 1) }

// RepliesPerConn is how many replies the busiest demo responder connection
// sends to one request: the responders (and the sentinel) divided over at
// most MaxResponderConns connections, rounded up; 1 for -discover and for
// 100 responders or fewer (each has a connection of its own).
func (cfg *Config) RepliesPerConn() int {
	n := cfg.total()
	conns := min(n, MaxResponderConns)
	if cfg.Discover || conns == 0 {
		return 1
	}
	return (n + conns - 1) / conns
}

// total is how many demo responders run, the sentinel included.
func (cfg *Config) total() int {
	if cfg.Sentinel {
		return cfg.Responders + 1
	}
	return cfg.Responders
}

// Placed is one demo responder and where it runs.
type Placed struct {
	// Name is the responder's name (responder-1, ..., sentinel).
	Name string
	// Node is the name of the server its connection reached.
	Node string
	// Cluster is that node's cluster (cli.Node.Cluster): "east" or "west"
	// on a supercluster.
	Cluster string
	// serverID is that server's id, as its connection saw it.
	serverID string
}

// serveDemo starts cfg's demo responders, each on a connection of its own
// (shared beyond MaxResponderConns), connection k on node
// env.ResponderNode(k): round-robin over the nodes. One responder per
// server answers readiness probes, the first on it. They answer until ctx
// ends. Errors are the connection's or Serve's (a denied subscription wraps
// nats.ErrPermissionViolation).
func serveDemo(ctx context.Context, env *cli.Env, cfg Config) ([]Placed, error) {
	rs := DemoResponders(cfg.Responders, cfg.Delay, cfg.Seed, cfg.Sentinel)
	conns := min(len(rs), MaxResponderConns)
	groups := make([][]Responder, conns)
	for i, r := range rs {
		groups[i%conns] = append(groups[i%conns], r)
	}
	nodes := env.Nodes()
	var placed []Placed
	probed := map[string]bool{} // servers with a responder that answers probes
	for k, g := range groups {
		role := g[0].Name
		if len(g) > 1 {
			role = fmt.Sprintf("responders-%d", k+1)
		}
		node := env.ResponderNode(k)
		nc, err := env.ConnectNodeAs(cli.Responder, role, node)
		if err != nil {
			return nil, err
		}
		// One responder per server answers the readiness probes (the
		// first on the server's first connection): its answer is the
		// server's (see awaitResponders), and every answer more is a
		// message per probe for nothing.
		id := nc.ConnectedServerId()
		for i := range g {
			g[i].NoProbes = probed[id]
		}
		probed[id] = true
		if _, err := Serve(ctx, nc, DemoSubject, g); err != nil {
			return nil, err
		}
		cluster := ""
		if node < len(nodes) {
			cluster = nodes[node].Cluster
		}
		for _, r := range g {
			placed = append(placed, Placed{Name: r.Name, Node: cli.ServerName(nc), Cluster: cluster, serverID: nc.ConnectedServerId()})
		}
	}
	return placed, nil
}

// writePlacement writes, when env has more than one node, the node of each
// responder and of the requester nc, one line.
func writePlacement(w io.Writer, env *cli.Env, placed []Placed, nc *nats.Conn) {
	if len(env.Nodes()) < 2 {
		return
	}
	byNode := map[string][]string{}
	var order []string
	for _, p := range placed {
		if _, ok := byNode[p.Node]; !ok {
			order = append(order, p.Node)
		}
		byNode[p.Node] = append(byNode[p.Node], p.Name)
	}
	var parts []string
	for _, n := range order {
		parts = append(parts, strings.Join(byNode[n], ", ")+" on "+n)
	}
	parts = append(parts, "requester on "+cli.ServerName(nc)) // alone with -responders 0
	fmt.Fprintf(w, "nodes: %s\n", strings.Join(parts, "; "))
}

// needProbe reports whether a responder in placed is connected to another
// server than nc: then its interest reaches nc's server asynchronously
// (a route, a gateway). On nc's own server the responder's flush has
// already confirmed it.
func needProbe(placed []Placed, nc *nats.Conn) bool {
	id := nc.ConnectedServerId()
	for _, p := range placed {
		if p.serverID == "" || p.serverID != id {
			return true
		}
	}
	return false
}

// awaitResponders waits, with readiness probes on DemoSubject from nc
// bounded by ProbeTimeout, until one responder on each other server than
// nc's has answered one. That is enough, and all the wait can afford: a
// server passes the interest of its clients on to a route or a gateway per
// subject, not per subscription, and delivers what reaches it to every
// local subscriber; every responder's subscription was confirmed on its own
// server (its flush) before the probes. So one answer from a server's
// responder shows that the interest of all its responders has reached nc's
// server along the path the request takes. Waiting for every responder by
// name would cost a probe per new name, each answered by every responder:
// about n² messages for n responders (a million for 1,000, more than
// ProbeTimeout). It writes one line when that was not at once. The error is
// probe.Await': it wraps nats.ErrNoResponders or nats.ErrTimeout
// when the interest did not come in time.
func awaitResponders(ctx context.Context, w io.Writer, nc *nats.Conn, placed []Placed) error {
	p, err := probe.Await(ctx, nc, DemoSubject, probe.AllOf(perServer(placed, nc.ConnectedServerId())...), ProbeTimeout)
	if err != nil {
		return fmt.Errorf("waiting for the responders' interest: %w", err)
	}
	if p.Delayed() {
		fmt.Fprintf(w, "interest: waited %s for the responders to be visible from %s: %s\n", round(p.Waited), cli.ServerName(nc), p)
	}
	return nil
}

// perServer names the first responder in placed on each server other than
// the one whose id is own (a responder whose server is unknown is named
// too): those whose answers the probes wait for.
func perServer(placed []Placed, own string) []string {
	var names []string
	seen := map[string]bool{own: true}
	for _, p := range placed {
		if p.serverID == "" || !seen[p.serverID] {
			seen[p.serverID] = true
			names = append(names, p.Name)
		}
	}
	return names
}

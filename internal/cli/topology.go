// Topologies: where a program's connections go when NATS is more than one
// server. -cluster N starts an embedded cluster of N nodes; a program can
// also ask for an embedded hub with a leaf node, or a supercluster. Every
// connection is placed on a node by its role (ConnectNode, ResponderNode,
// RequesterNode), and the same code runs against a real cluster named by
// NATS_URL, one node per URL listed.

package cli

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"reqreply/internal/testserver"
)

// MaxClusterNodes bounds -cluster: 5 nodes (the machines this suite runs on
// have a few cores; a bigger embedded cluster shows nothing more).
const MaxClusterNodes = 5

// Kind is the shape of an embedded topology.
type Kind int

// The embedded topologies.
const (
	// Single is one server (the default; -cluster 1 is the same).
	Single Kind = iota
	// Cluster is Topology.Nodes servers routed into one cluster (-cluster N).
	Cluster
	// Leaf is a hub server and a leaf node connected to it: node 0 is the
	// hub ("hub"), node 1 the leaf ("leaf").
	Leaf
	// Supercluster is two clusters of 2 nodes, "east" and "west", joined by
	// gateways: nodes 0-1 are east-1 and east-2, nodes 2-3 west-1 and west-2.
	Supercluster
)

// Topology is what a program asks of its servers: which embedded topology
// runs when NATS_URL is unset. Exec registers it as the -cluster flag
// (unless the program has registered it already, to set Kind itself) and
// builds the Env from it (FromTopology).
type Topology struct {
	// Kind is the embedded topology; Cluster once -cluster is above 1.
	Kind Kind
	// Nodes is -cluster: 1..MaxClusterNodes; 0 or 1 means one server.
	Nodes int
}

// AddFlags registers -cluster on fs, writing to t.
func (t *Topology) AddFlags(fs *flag.FlagSet) {
	fs.Var(t, "cluster", fmt.Sprintf("run on an embedded cluster of this many nodes (1..%d; NATS_URL unset); responders are spread over the nodes, the requester sits on another", MaxClusterNodes))
}

// String is flag.Value's: the number of nodes.
func (t *Topology) String() string {
	if t == nil || t.Nodes == 0 {
		return "1"
	}
	return strconv.Itoa(t.Nodes)
}

// Set is flag.Value's: it parses -cluster N, refusing anything outside
// 1..MaxClusterNodes.
func (t *Topology) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxClusterNodes {
		return fmt.Errorf("want a number of nodes in 1..%d", MaxClusterNodes)
	}
	t.Nodes = n
	if n > 1 {
		t.Kind = Cluster
	} else {
		t.Kind = Single
	}
	return nil
}

// topologyFlag returns the Topology behind fs's -cluster flag, registering
// one if the program has not.
func topologyFlag(fs *flag.FlagSet) *Topology {
	if f := fs.Lookup("cluster"); f != nil {
		if t, ok := f.Value.(*Topology); ok {
			return t
		}
		return &Topology{}
	}
	t := &Topology{}
	t.AddFlags(fs)
	return t
}

// Node is one server of the Env's topology.
type Node struct {
	// Name is the server's name (node-1, hub, east-2, ...), or, for a
	// server listed in NATS_URL, its host:port until a connection learns
	// its name.
	Name string
	// Cluster groups the nodes a connection may fail over to: the embedded
	// cluster's name, "hub" or "leaf", "east" or "west"; "" for NATS_URL's
	// servers, which are taken as one cluster.
	Cluster string
	// URL is the node's client URL.
	URL string
}

// network is what an Env knows of its servers beyond its URL: the nodes,
// and the embedded servers Close stops.
type network struct {
	nodes   []Node
	servers []*server.Server
}

// FromTopology is FromEnvironment for a Topology: with NATS_URL set, an Env
// on its servers (one Node per URL; a Topology other than Single is refused
// with an error wrapping ErrUsage, since the servers are NATS_URL's, and so
// is one with NATS_CONTEXT set, or credentials in the environment, which an
// embedded topology, with no users, would drop silently); with
// NATS_URL unset and t a single server, FromEnvironment's embedded server;
// otherwise the embedded topology t asks for, announced on stderr in one
// line with each node's name and URL. Env.Close stops its servers. The
// error wraps testserver.ErrNotReady when the topology does not form.
func FromTopology(scenario string, t Topology, getenv func(string) string, stderr io.Writer) (*Env, error) {
	if strings.TrimSpace(getenv("NATS_URL")) != "" && t.Kind != Single {
		fix := "unset NATS_URL"
		if t.Kind == Cluster {
			fix += ", or drop -cluster"
		}
		return nil, Usagef("this run starts an embedded %s; with NATS_URL set the servers are yours (%s)", t.describe(), fix)
	}
	if t.Kind == Single {
		return FromEnvironment(scenario, getenv, stderr)
	}
	// The embedded topology has no users: a context or credentials from the
	// environment would be dropped, so they are refused, as they are for
	// one embedded server (LoadCredentials, with no URL and no context).
	if c := strings.TrimSpace(getenv("NATS_CONTEXT")); c != "" {
		return nil, Usagef("this run starts an embedded %s; NATS_CONTEXT=%s names servers of yours (unset NATS_CONTEXT, or drop -cluster)", t.describe(), c)
	}
	if _, err := LoadCredentials("", getenv); err != nil {
		return nil, err
	}
	env, err := EmbeddedTopology(scenario, t)
	if err != nil {
		return nil, err
	}
	env.Stderr = stderr
	var list []string
	for _, n := range env.Nodes() {
		list = append(list, n.Name+" "+n.URL)
	}
	fmt.Fprintf(stderr, "%s: NATS_URL is unset; using an embedded %s: %s\n", scenario, t.describe(), strings.Join(list, ", "))
	return env, nil
}

// describe names the topology in words.
func (t Topology) describe() string {
	switch t.Kind {
	case Cluster:
		return fmt.Sprintf("cluster of %d nodes", t.Nodes)
	case Leaf:
		return "hub with a leaf node"
	case Supercluster:
		return "supercluster (east and west, 2 nodes each, joined by gateways)"
	}
	return "nats-server"
}

// EmbeddedTopology returns an Env on the embedded servers t asks for,
// started with testserver and ready (routes, leaf connection, gateways
// both ways): one server, a cluster of t.Nodes (with JetStream, its meta
// group led, in a temporary directory Close removes), a hub and a leaf, or
// a supercluster. Its URL lists every node; Env.Close drains the connections,
// then stops the servers. The error wraps testserver.ErrNotReady if the
// topology does not form within testserver.ReadyTimeout.
func EmbeddedTopology(scenario string, t Topology) (*Env, error) {
	var net network
	var storeDir string // a cluster's JetStream store, removed by Env.Close
	switch t.Kind {
	case Single:
		s, err := testserver.Start(testserver.WithServerName("node-1"))
		if err != nil {
			return nil, fmt.Errorf("embedded nats-server: %w", err)
		}
		net.servers = []*server.Server{s}
		net.nodes = []Node{{Name: "node-1", Cluster: "single", URL: s.ClientURL()}}
	case Cluster:
		// JetStream too, in a temporary directory Close removes, so a
		// key-value bucket can be replicated on the nodes (tail -demo
		// charge).
		dir, err := os.MkdirTemp("", scenario+"-jetstream-")
		if err != nil {
			return nil, fmt.Errorf("embedded cluster: %w", err)
		}
		storeDir = dir
		servers, err := testserver.StartCluster(t.Nodes, testserver.WithJetStream(dir))
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("embedded cluster: %w", err)
		}
		net.servers = servers
		for _, s := range servers {
			net.nodes = append(net.nodes, Node{Name: s.Name(), Cluster: "reqreply", URL: s.ClientURL()})
		}
	case Leaf:
		hub, err := testserver.StartHub(testserver.WithServerName("hub"))
		if err != nil {
			return nil, fmt.Errorf("embedded hub: %w", err)
		}
		leaf, err := testserver.StartLeaf(hub, testserver.WithServerName("leaf"))
		if err != nil {
			testserver.Shutdown(hub.Server)
			return nil, fmt.Errorf("embedded leaf node: %w", err)
		}
		net.servers = []*server.Server{hub.Server, leaf}
		net.nodes = []Node{
			{Name: "hub", Cluster: "hub", URL: hub.ClientURL()},
			{Name: "leaf", Cluster: "leaf", URL: leaf.ClientURL()},
		}
	case Supercluster:
		sc, err := testserver.StartSupercluster([]string{"east", "west"}, 2)
		if err != nil {
			return nil, fmt.Errorf("embedded supercluster: %w", err)
		}
		for i, c := range sc.Clusters {
			for _, s := range c {
				net.servers = append(net.servers, s)
				net.nodes = append(net.nodes, Node{Name: s.Name(), Cluster: sc.Names[i], URL: s.ClientURL()})
			}
		}
	default:
		return nil, fmt.Errorf("embedded topology: unknown kind %d", t.Kind)
	}
	var urls []string
	for _, n := range net.nodes {
		urls = append(urls, n.URL)
	}
	env := NewEnv(scenario, strings.Join(urls, ","))
	env.net, env.storeDir = net, storeDir
	return env, nil
}

// Nodes returns the Env's servers: the embedded topology's nodes, or one
// per URL in the Env's URL (named by host:port), in order.
func (e *Env) Nodes() []Node {
	if len(e.net.nodes) > 0 {
		return e.net.nodes
	}
	var nodes []Node
	for _, u := range strings.Split(e.URL, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		name := u
		if p, err := url.Parse(u); err == nil && p.Host != "" {
			name = p.Host
		}
		nodes = append(nodes, Node{Name: name, URL: u})
	}
	return nodes
}

// Servers returns the embedded servers of the Env's topology (nil for
// NATS_URL's servers, and for an Env from Embedded): for tests and demos
// that stop a node or read its state.
func (e *Env) Servers() []*server.Server {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.net.servers
}

// ResponderNode is the node of the i-th responder or worker (0-based):
// round-robin over the nodes, i mod len(Nodes).
func (e *Env) ResponderNode(i int) int {
	n := len(e.Nodes())
	if n == 0 {
		return 0
	}
	return i % n
}

// RequesterNode is the requester's node: the second (index 1) when there
// are several, so that it is never the node of the first responder and
// its requests cross a route (or a leaf connection, or a gateway) to
// reach it; the only node otherwise.
func (e *Env) RequesterNode() int {
	if len(e.Nodes()) > 1 {
		return 1
	}
	return 0
}

// ConnectNode is Connect with the connection placed on node i (an index
// into Nodes): nats.go tries that node first and then, in order, the other
// nodes of the same Node.Cluster (so that a lost node fails over within its
// cluster), plus the servers it discovers from them. A node index out of
// range is taken modulo the number of nodes. When the Env has more than one
// node, one line on Stderr names the node it connected to:
// "<scenario> <role>: connected to <server name> at <url>", the first time
// that role connects to that node only (a demo that starts fresh members
// for each row, or brings one back, would otherwise repeat it each time).
// Errors are Connect's.
func (e *Env) ConnectNode(role string, i int, opts ...nats.Option) (*nats.Conn, error) {
	return e.ConnectNodeAs(0, role, i, opts...)
}

// ConnectNodeAs is ConnectNode for a connection playing part in the
// request-reply (see ConnectAs): under -secure, which runs on one server,
// it connects as that part's user. Errors are ConnectAs's.
func (e *Env) ConnectNodeAs(part Part, role string, i int, opts ...nats.Option) (*nats.Conn, error) {
	nodes := e.Nodes()
	if len(nodes) <= 1 {
		return e.ConnectAs(part, role, opts...)
	}
	i %= len(nodes)
	if i < 0 {
		i += len(nodes)
	}
	servers := []string{nodes[i].URL}
	for k := 1; k < len(nodes); k++ {
		if n := nodes[(i+k)%len(nodes)]; n.Cluster == nodes[i].Cluster {
			servers = append(servers, n.URL)
		}
	}
	place := func(o *nats.Options) error {
		o.Servers = servers
		o.NoRandomize = true
		return nil
	}
	nc, err := e.ConnectAs(part, role, append([]nats.Option{place}, opts...)...)
	if err != nil {
		return nil, err
	}
	if e.firstPlacement(role, ServerName(nc)) {
		e.Logf("%s %s: connected to %s at %s", e.Scenario, role, ServerName(nc), Redact(nc.ConnectedUrl()))
	}
	return nc, nil
}

// firstPlacement reports whether role's connection to node is the first
// one ConnectNodeAs announces, and records it.
func (e *Env) firstPlacement(role, node string) bool {
	key := role + " " + node
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.placed[key] {
		return false
	}
	if e.placed == nil {
		e.placed = map[string]bool{}
	}
	e.placed[key] = true
	return true
}

// ServerName names the server nc is connected to: its server_name, or its
// URL when the server has none; "" when nc is not connected.
func ServerName(nc *nats.Conn) string {
	if name := nc.ConnectedServerName(); name != "" {
		return name
	}
	return Redact(nc.ConnectedUrl())
}

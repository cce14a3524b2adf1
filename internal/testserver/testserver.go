// Package testserver starts real nats-servers inside the current process:
// one server, a cluster of several, a leaf node attached to a hub, or a
// supercluster of clusters joined by gateways. The
// tests of every scenario use it, and so does each scenario program when
// NATS_URL is unset, so that `go run ./<scenario>` needs nothing installed.
//
// Every server listens on 127.0.0.1 with a port the kernel picks (Port -1),
// never installs signal handlers (NoSigs: an embedded server must not catch
// Ctrl-C and exit the program that embeds it) and logs nothing unless
// [WithLogging] asks for it. Readiness is read from the server's own state
// (ReadyForConnections, route, gateway and leaf counts), never waited for with a sleep.
package testserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ReadyTimeout bounds how long Start, StartCluster and StartLeaf wait for a
// server to accept clients, and a cluster or leaf node to connect: 10 s.
const ReadyTimeout = 10 * time.Second

// ErrNotReady is wrapped by the errors returned when a server, cluster or
// leaf node is not ready within ReadyTimeout.
var ErrNotReady = errors.New("nats-server not ready")

// Option changes the server.Options of a server before it starts.
type Option func(*server.Options)

// WithMaxPayload sets the largest message payload the server accepts, in
// bytes (nats-server's default is 1 MiB). Clients learn it on connect and
// reject larger publishes with nats.ErrMaxPayload.
func WithMaxPayload(bytes int32) Option {
	return func(o *server.Options) { o.MaxPayload = bytes }
}

// WithUsers turns on user/password authorization with these users and their
// publish/subscribe permissions (nil permissions allow everything).
func WithUsers(users ...*server.User) Option {
	return func(o *server.Options) { o.Users = append(o.Users, users...) }
}

// WithLogging makes the server log to stderr, as a separate nats-server
// process would; useful when a test or a run needs to see what it did.
func WithLogging() Option {
	return func(o *server.Options) { o.NoLog = false }
}

// WithPort makes the server listen for clients on port instead of one the
// kernel picks: how a test restarts a server where its clients will look
// for it (start one, note its port, shut it down, start another with
// WithPort).
func WithPort(port int) Option {
	return func(o *server.Options) { o.Port = port }
}

// WithoutHeaders starts a server that does not support message headers
// (NoHeaderSupport), like nats-server before 2.2: clients see
// HeadersSupported() false, cannot publish headers, and get no
// no-responders status, so a request nobody answers times out.
func WithoutHeaders() Option {
	return func(o *server.Options) { o.NoHeaderSupport = true }
}

// WithServerName names the server (shown in INFO and in cluster logs).
func WithServerName(name string) Option {
	return func(o *server.Options) { o.ServerName = name }
}

func baseOptions(opts []Option) *server.Options {
	o := &server.Options{
		Host:   "127.0.0.1",
		Port:   -1,
		NoSigs: true,
		NoLog:  true,
	}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// Start starts one nats-server with opts and returns it once it accepts
// client connections (at most ReadyTimeout). Its URL is s.ClientURL(); the
// caller stops it with s.Shutdown(). The error wraps ErrNotReady when the
// server does not come up in time, or the server's own error for bad options.
func Start(opts ...Option) (*server.Server, error) {
	return startOptions(baseOptions(opts))
}

func startOptions(o *server.Options) (*server.Server, error) {
	s, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("new nats-server: %w", err)
	}
	if !o.NoLog {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(ReadyTimeout) {
		s.Shutdown()
		return nil, fmt.Errorf("start nats-server: %w within %s", ErrNotReady, ReadyTimeout)
	}
	return s, nil
}

// New is Start for tests, benchmarks and examples run by go test: it fails
// tb at once if the server does not start, and shuts the server down (and
// waits for it) when tb's test ends.
func New(tb testing.TB, opts ...Option) *server.Server {
	tb.Helper()
	s, err := Start(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { shutdown(s) })
	return s
}

// NewReloadable is New, and returns with the server reload, which applies
// more options on top of those it started with to the running server, as
// a config reload does (server.ReloadOptions): to change the users and
// their permissions while clients stay connected. reload fails tb if the
// server refuses the options.
func NewReloadable(tb testing.TB, opts ...Option) (s *server.Server, reload func(more ...Option)) {
	tb.Helper()
	o := baseOptions(opts)
	s, err := startOptions(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { shutdown(s) })
	port := s.Addr().(*net.TCPAddr).Port
	return s, func(more ...Option) {
		tb.Helper()
		r := o.Clone()
		r.Port = port
		for _, opt := range more {
			opt(r)
		}
		if err := s.ReloadOptions(r); err != nil {
			tb.Fatal(err)
		}
	}
}

func shutdown(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// StartCluster starts n (≥ 2) servers routed into one cluster named
// "reqreply" and returns them once every server counts every other as a
// remote (Server.NumRemotes is n-1 on each), which is when a client of any
// node can reach responders on all of them, once their interest has
// propagated (see WaitForInterest). The error wraps ErrNotReady if the routes
// do not form within ReadyTimeout; servers already started are shut down on
// error.
func StartCluster(n int, opts ...Option) ([]*server.Server, error) {
	return startCluster("reqreply", "node", n, opts)
}

// startCluster starts n servers named "<prefix>-1".."<prefix>-n" in the
// cluster called name, and waits for every route.
func startCluster(name, prefix string, n int, opts []Option) ([]*server.Server, error) {
	if n < 2 {
		return nil, fmt.Errorf("start cluster %s: need at least 2 servers, got %d", name, n)
	}
	var servers []*server.Server
	fail := func(err error) ([]*server.Server, error) {
		Shutdown(servers...)
		return nil, err
	}
	for i := range n {
		o := baseOptions(opts)
		o.ServerName = fmt.Sprintf("%s-%d", prefix, i+1)
		o.Cluster.Name = name
		o.Cluster.Host = "127.0.0.1"
		o.Cluster.Port = -1
		if i > 0 {
			// Every node routes to the first; the first gossips the others.
			seed := servers[0].ClusterAddr()
			o.Routes = []*url.URL{{Scheme: "nats-route", Host: seed.String()}}
		}
		s, err := startOptions(o)
		if err != nil {
			return fail(err)
		}
		servers = append(servers, s)
	}
	// NumRoutes counts route connections, not servers: since nats-server
	// 2.10 each pair of servers shares a pool of them (3 by default) plus one
	// per pinned account (the system account's, by default), so a single
	// connected neighbour already makes it n-1 or more. NumRemotes counts
	// distinct remote servers.
	ok := Settle(func() bool {
		for _, s := range servers {
			if s.NumRemotes() < n-1 {
				return false
			}
		}
		return true
	})
	if !ok {
		return fail(fmt.Errorf("start cluster %s of %d: routes %w within %s", name, n, ErrNotReady, ReadyTimeout))
	}
	return servers, nil
}

// NewCluster is StartCluster for tests: it fails tb if the cluster does not
// form and shuts every node down when the test ends.
func NewCluster(tb testing.TB, n int, opts ...Option) []*server.Server {
	tb.Helper()
	servers, err := StartCluster(n, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { Shutdown(servers...) })
	return servers
}

// Supercluster is several clusters joined by gateways, as NATS runs across
// regions: a client on any node reaches responders in every cluster, and
// queue subscribers in the client's own cluster are preferred over remote
// ones (a queue request crosses a gateway only when no member is local).
type Supercluster struct {
	// Names are the cluster (and gateway) names, in the order given.
	Names []string
	// Clusters[i] are the nodes of cluster Names[i], named
	// "<name>-1".."<name>-n".
	Clusters [][]*server.Server
}

// Servers returns every node of every cluster, cluster by cluster.
func (sc *Supercluster) Servers() []*server.Server {
	var all []*server.Server
	for _, c := range sc.Clusters {
		all = append(all, c...)
	}
	return all
}

// Shutdown stops every node and waits until each has stopped.
func (sc *Supercluster) Shutdown() { Shutdown(sc.Servers()...) }

// StartSupercluster starts one cluster of n (≥ 2) nodes for each of names
// (at least 2 distinct names, such as "east" and "west") and joins them with
// gateways: each later cluster lists the gateways of the earlier ones, and
// the earlier ones learn of it when it connects. It returns once every
// cluster's routes are up and every gateway is connected both ways: each
// node has an outbound gateway to every other cluster, and each cluster
// counts, over its nodes, one inbound gateway from every node of every
// other cluster (Gatewayz). nats-server waits about a second before it
// dials a gateway, so this takes a second or two. The error wraps
// ErrNotReady if that does not happen within ReadyTimeout; servers already
// started are shut down on error.
func StartSupercluster(names []string, n int, opts ...Option) (*Supercluster, error) {
	if len(names) < 2 {
		return nil, fmt.Errorf("start supercluster: need at least 2 clusters, got %d", len(names))
	}
	sc := &Supercluster{Names: names}
	fail := func(err error) (*Supercluster, error) {
		sc.Shutdown()
		return nil, err
	}
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			return fail(fmt.Errorf("start supercluster: cluster name %q given twice", name))
		}
		seen[name] = true
		var remotes []*server.RemoteGatewayOpts
		for i, c := range sc.Clusters {
			var urls []*url.URL
			for _, s := range c {
				urls = append(urls, &url.URL{Scheme: "nats", Host: s.GatewayAddr().String()})
			}
			remotes = append(remotes, &server.RemoteGatewayOpts{Name: names[i], URLs: urls})
		}
		gateway := func(o *server.Options) {
			o.Gateway.Name = name
			o.Gateway.Host = "127.0.0.1"
			o.Gateway.Port = -1
			o.Gateway.Gateways = remotes
		}
		nodes, err := startCluster(name, name, n, append(append([]Option{}, opts...), gateway))
		if err != nil {
			return fail(fmt.Errorf("start supercluster: %w", err))
		}
		sc.Clusters = append(sc.Clusters, nodes)
	}
	if !Settle(sc.gatewaysUp) {
		return fail(fmt.Errorf("start supercluster %v: gateways %w within %s", names, ErrNotReady, ReadyTimeout))
	}
	return sc, nil
}

// gatewaysUp reports whether every gateway connection is up both ways.
func (sc *Supercluster) gatewaysUp() bool {
	for i, c := range sc.Clusters {
		inbound := map[string]int{} // remote cluster name -> inbound connections
		for _, s := range c {
			if s.NumOutboundGateways() < len(sc.Clusters)-1 {
				return false
			}
			gz, err := s.Gatewayz(nil)
			if err != nil {
				return false
			}
			for remote, conns := range gz.InboundGateways {
				inbound[remote] += len(conns)
			}
		}
		for j, other := range sc.Clusters {
			if j != i && inbound[sc.Names[j]] < len(other) {
				return false
			}
		}
	}
	return true
}

// NewSupercluster is StartSupercluster for tests: it fails tb if the
// supercluster does not form and shuts every node down when the test ends.
func NewSupercluster(tb testing.TB, names []string, n int, opts ...Option) *Supercluster {
	tb.Helper()
	sc, err := StartSupercluster(names, n, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(sc.Shutdown)
	return sc
}

// Hub is a server that accepts leaf node connections on LeafURL.
type Hub struct {
	*server.Server
	// LeafURL is where leaf nodes connect, nats-leaf://127.0.0.1:<port>.
	LeafURL *url.URL
}

// StartHub starts a server that accepts leaf node connections; pass it to
// StartLeaf. nats-server does not report the leaf port it picked, so the
// port is reserved by a short-lived listener first.
func StartHub(opts ...Option) (*Hub, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("start hub: %w", err)
	}
	o := baseOptions(opts)
	o.LeafNode.Host = "127.0.0.1"
	o.LeafNode.Port = port
	s, err := startOptions(o)
	if err != nil {
		return nil, err
	}
	return &Hub{Server: s, LeafURL: &url.URL{Scheme: "nats-leaf", Host: fmt.Sprintf("127.0.0.1:%d", port)}}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartLeaf starts a server that connects to hub as a leaf node and returns
// it once both sides count the leaf connection. Interest on either side is
// then forwarded to the other, as with a leaf node at the edge of a system.
func StartLeaf(hub *Hub, opts ...Option) (*server.Server, error) {
	if hub == nil || hub.LeafURL == nil {
		return nil, errors.New("start leaf: no hub (start one with StartHub)")
	}
	o := baseOptions(opts)
	o.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{hub.LeafURL}}}
	leaf, err := startOptions(o)
	if err != nil {
		return nil, err
	}
	if !Settle(func() bool { return leaf.NumLeafNodes() >= 1 && hub.NumLeafNodes() >= 1 }) {
		shutdown(leaf)
		return nil, fmt.Errorf("start leaf: connection to hub %w within %s", ErrNotReady, ReadyTimeout)
	}
	return leaf, nil
}

// Shutdown stops each server and waits until it has stopped.
func Shutdown(servers ...*server.Server) {
	for _, s := range servers {
		if s != nil {
			shutdown(s)
		}
	}
}

// WaitForInterest returns nil once s knows of a subscriber on subject in its
// global account (locally, or through a route or leaf node), or an error
// wrapping ErrNotReady after ReadyTimeout. On a cluster, interest made on one
// node reaches the others only once it has propagated; wait for it on the
// node the requester uses before relying on it.
func WaitForInterest(s *server.Server, subject string) error {
	if Settle(func() bool { return s.GlobalAccount().SubscriptionInterest(subject) }) {
		return nil
	}
	return fmt.Errorf("interest in %q on %s: %w within %s", subject, s.Name(), ErrNotReady, ReadyTimeout)
}

// WaitForNoInterest returns nil once s knows of no subscriber on subject in
// its global account, locally or through a route, leaf node or gateway: a
// request made on s then gets no responders at once. The error wraps
// ErrNotReady after ReadyTimeout. After the last responder leaves a
// cluster, the other nodes forget its interest only once the departure has
// propagated: wait for it on the node the requester uses.
func WaitForNoInterest(s *server.Server, subject string) error {
	if Settle(func() bool { return !s.GlobalAccount().SubscriptionInterest(subject) }) {
		return nil
	}
	return fmt.Errorf("interest in %q on %s still there: %w within %s", subject, s.Name(), ErrNotReady, ReadyTimeout)
}

// WaitForSubscribers returns nil once s counts exactly n subscriptions
// (plain and queue members alike) matching subject in its global account,
// or an error wrapping ErrNotReady after ReadyTimeout: the server's own
// view of who would get a request, which changes only once it has
// processed a SUB, an UNSUB or a closed connection.
func WaitForSubscribers(s *server.Server, subject string, n int) error {
	if Settle(func() bool { return s.GlobalAccount().Interest(subject) == n }) {
		return nil
	}
	return fmt.Errorf("%d subscribers on %q on %s: %w within %s (last %d)", n, subject, s.Name(), ErrNotReady, ReadyTimeout, s.GlobalAccount().Interest(subject))
}

// Settle polls cond on the calling goroutine every millisecond until it
// holds (true) or ReadyTimeout passes (false): for state that follows an
// event on its own time, such as a server's counters, a closed
// connection's subscriptions leaving the server, or a goroutine's exit.
// It starts no goroutine (unlike require.Eventually), so it can wait for
// the goroutine count itself.
func Settle(cond func() bool) bool {
	deadline := time.Now().Add(ReadyTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// StartConfigFile starts one nats-server configured by the nats-server
// config file at path, read with server.ProcessConfigFile exactly as
// `nats-server -c path` would, and then adjusted as every server here is: it
// listens on 127.0.0.1 on a port the kernel picks (whatever the file's
// listen says), installs no signal handlers, and logs nothing unless opts
// say so (WithLogging). opts apply after the file. Variables the file does
// not define ($NAME) are read from the process environment. The error wraps
// the config parser's (a bad file) or ErrNotReady.
func StartConfigFile(path string, opts ...Option) (*server.Server, error) {
	o, err := server.ProcessConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("nats-server config %s: %w", path, err)
	}
	o.Host, o.Port, o.NoSigs, o.NoLog = "127.0.0.1", -1, true, true
	for _, opt := range opts {
		opt(o)
	}
	return startOptions(o)
}

// NewConfigFile is StartConfigFile for tests: it fails tb at once if the
// server does not start, and shuts it down when tb's test ends.
func NewConfigFile(tb testing.TB, path string, opts ...Option) *server.Server {
	tb.Helper()
	s, err := StartConfigFile(path, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { shutdown(s) })
	return s
}

// WithTLS makes the server require TLS from its clients with config (its
// certificate in config.Certificates; config.ClientAuth set to
// tls.RequireAndVerifyClientCert and config.ClientCAs to demand client
// certificates too, which TLSVerify then records). Clients connect with a
// tls:// URL or a nats.RootCAs / nats.Secure option.
func WithTLS(config *tls.Config) Option {
	return func(o *server.Options) {
		o.TLSConfig = config
		o.TLS = true
		o.TLSVerify = config.ClientAuth == tls.RequireAndVerifyClientCert
		o.TLSTimeout = 2
	}
}

// Output helpers the programs share: a measured duration trimmed for
// printing, and the "nodes:" line that says where a run's connections are
// when NATS is more than one node.

package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Round trims a measured duration for printing to about three significant
// digits: 312.456µs → 312µs, 1.23456ms → 1.23ms, 2.000731s → 2.001s
// (microseconds below 1 ms, tens of microseconds below 1 s, milliseconds
// above).
func Round(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Millisecond)
	}
}

// MultiNode reports whether the Env has more than one node (-cluster N, an
// embedded hub or supercluster, or NATS_URL listing several servers): then
// a connection's interest reaches the other nodes asynchronously, and a
// request can be routed to a node whose responder has just left.
func (e *Env) MultiNode() bool { return len(e.Nodes()) > 1 }

// WriteNodes writes, when env has more than one node, which node each of a
// run's connections is on, parts joined by ", ": "nodes: greeter on node-1,
// requester on node-2" for parts "greeter on node-1" and "requester on
// node-2". On one node, or with no parts, it writes nothing.
func WriteNodes(w io.Writer, env *Env, parts ...string) {
	if !env.MultiNode() || len(parts) == 0 {
		return
	}
	fmt.Fprintf(w, "nodes: %s\n", strings.Join(parts, ", "))
}

// WritePlacement writes, when env has more than one node, which node each
// member of a group and the requester nc are on: "nodes: worker-1 on
// node-1, worker-2 on node-2; requester on node-2", where placed(m) says
// "worker-1 on node-1" for a member and ServerName names nc's node. On one
// node it writes nothing.
func WritePlacement[M any](w io.Writer, env *Env, nc *nats.Conn, members []M, placed func(M) string) {
	if !env.MultiNode() {
		return
	}
	parts := make([]string, 0, len(members))
	for _, m := range members {
		parts = append(parts, placed(m))
	}
	fmt.Fprintf(w, "nodes: %s; requester on %s\n", strings.Join(parts, ", "), ServerName(nc))
}

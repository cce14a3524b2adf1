// The -msgtrace flag: a program's first request sent with nats-server's
// message tracing, and the hops the servers report printed as a tree.

package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"reqreply/internal/testserver"
	"reqreply/msgtrace"
)

// MsgTraceQuiet is how long a -msgtrace run waits for a report that some
// server announced and has not sent: 2 s. A complete trace ends at once.
const MsgTraceQuiet = 2 * time.Second

// MsgTrace is the -msgtrace flag: when On, the program sends its first
// request with the Nats-Trace-Dest header (package msgtrace) and prints
// where it went, as every server on its way reported it (nats-server 2.11
// and later): the server and connection it entered by, each route,
// gateway or leaf crossing, and each client connection it was delivered
// to. The request is delivered and answered as any other; the reports go
// to an inbox of their own, never counted as replies.
type MsgTrace struct {
	On bool
}

// AddFlags registers -msgtrace on fs, writing to m.
func (m *MsgTrace) AddFlags(fs *flag.FlagSet) {
	fs.BoolVar(&m.On, "msgtrace", false, "send the first request with nats-server's message tracing (Nats-Trace-Dest) and print where it went: the server it entered, each route, gateway or leaf crossing, each connection it reached")
}

// Check refuses -msgtrace, with an error wrapping ErrUsage, where it would
// trace nothing or break the run: with -serve (no request is sent), and
// with -secure (the requester may not publish to the trace's inbox, and
// the server drops a traced message whose publisher may not). mode is the
// program's; set is SetFlags's.
func (m *MsgTrace) Check(mode Mode, set map[string]bool) error {
	if !m.On {
		return nil
	}
	if mode.Serve {
		return Usagef("-msgtrace does nothing with -serve, which sends no request")
	}
	if set["secure"] {
		return Usagef("-msgtrace does not combine with -secure: the requester may not publish to the trace's inbox, and the server would drop the traced request")
	}
	return nil
}

// Begin starts the trace of one request on nc (msgtrace.Start), a
// connection of env, when -msgtrace is on; without it, a nil *Traced, whose
// methods do nothing. On env's embedded supercluster it then waits until
// the other clusters know of the trace's inbox
// (testserver.WaitForGatewayInterest): nats-server's gateways carry the
// global account's messages by interest only, and a report sent before
// the interest has crossed would be dropped. (On servers of your own, a
// report can be lost that way; the tree then says which hop sent none.)
// Errors are msgtrace.Start's, nats.ErrHeadersNotSupported for a server
// without headers, and the wait's (testserver.ErrNotReady).
func (m MsgTrace) Begin(env *Env, nc *nats.Conn) (*Traced, error) {
	if !m.On {
		return nil, nil
	}
	if !nc.HeadersSupported() {
		return nil, fmt.Errorf("-msgtrace: %w", nats.ErrHeadersNotSupported)
	}
	tr, err := msgtrace.Start(nc)
	if err != nil {
		return nil, fmt.Errorf("-msgtrace: %w", err)
	}
	if servers, cluster := env.Servers(), nc.ConnectedClusterName(); len(servers) > 1 && cluster != "" {
		if err := testserver.WaitForGatewayInterest(servers, cluster, tr.Dest()); err != nil {
			tr.Stop()
			return nil, fmt.Errorf("-msgtrace: %w", err)
		}
	}
	return &Traced{tr: tr}, nil
}

// Traced is one request traced under -msgtrace (MsgTrace.Begin). A nil
// *Traced stands for -msgtrace off.
type Traced struct {
	tr *msgtrace.Trace
}

// Header is the traced request's header (msgtrace.Trace.Header); nil when
// t is nil.
func (t *Traced) Header() nats.Header {
	if t == nil {
		return nil
	}
	return t.tr.Header()
}

// Print collects the servers' reports (msgtrace.Trace.Collect, with
// MsgTraceQuiet) and writes the tree to w, under the line
// "msgtrace: where the request went, as the servers reported it:", and
// after it the hops that sent no report, if any. A trace that fails is
// one line on w, "msgtrace: <error>", not the run's error: the request
// itself succeeded or failed on its own. Nothing when t is nil or ctx has
// ended. The trace's inbox is unsubscribed after.
func (t *Traced) Print(ctx context.Context, w io.Writer) {
	if t == nil {
		return
	}
	tree, err := t.tr.Collect(ctx, MsgTraceQuiet)
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		fmt.Fprintf(w, "msgtrace: %v\n", err)
		return
	}
	fmt.Fprintln(w, "msgtrace: where the request went, as the servers reported it:")
	for line := range strings.Lines(tree.String()) {
		fmt.Fprint(w, "  "+line)
	}
	if missing := tree.Missing(); len(missing) > 0 {
		fmt.Fprintf(w, "  (no report from hops %s within %v)\n", strings.Join(missing, ", "), MsgTraceQuiet)
	}
}

// Stop ends the trace without collecting it (msgtrace.Trace.Stop), for a
// run that ends before its request; nothing when t is nil.
func (t *Traced) Stop() {
	if t != nil {
		t.tr.Stop()
	}
}

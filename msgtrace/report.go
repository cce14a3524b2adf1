// What a server reports of a traced message (its JSON, as nats-server's
// MsgTraceEvent writes it), and the Tree the reports of one request make.

package msgtrace

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of a connection, as nats-server numbers them.
type Kind int

// The connection kinds a Step names.
const (
	Client    Kind = 0 // an application's connection
	Route     Kind = 1 // another server of the same cluster
	Gateway   Kind = 2 // a server of another cluster of a supercluster
	System    Kind = 3 // the server's own internal connection
	Leaf      Kind = 4 // a leaf node connection (either side)
	JetStream Kind = 5 // JetStream's internal connection
	Account   Kind = 6 // an account's internal connection
)

var kindNames = []string{"client", "route", "gateway", "system", "leaf", "jetstream", "account"}

// String names the kind: "client", "route", "gateway", "leaf", ...
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind " + strconv.Itoa(int(k))
}

// Crosses reports whether a message sent on a connection of this kind goes
// on to another server (a route, gateway or leaf connection), which then
// sends a Report of its own.
func (k Kind) Crosses() bool { return k == Route || k == Gateway || k == Leaf }

// The Step types.
const (
	Ingress        = "in" // where the message entered the server
	Egress         = "eg" // a connection the server sent it to
	SubjectMapping = "sm" // the subject was mapped (Step.To)
	ServiceImport  = "si" // a service import (Step.Account, From, To)
	StreamExport   = "se" // a stream export (Step.Account, To)
	JetStreamStep  = "js" // a JetStream stream took it (Step.Stream)
)

// Server is the reporting server, as its report names it.
type Server struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Host    string `json:"host"`
	Cluster string `json:"cluster,omitempty"`
	Version string `json:"ver"`
}

// Step is one entry of a Report: its Type says which fields hold.
type Step struct {
	// Type is Ingress, Egress, SubjectMapping, ServiceImport, StreamExport
	// or JetStreamStep.
	Type string    `json:"type"`
	Time time.Time `json:"ts"`
	// Kind, CID and Name are the connection of an Ingress or an Egress:
	// for a client its name (nats.Name), for a route, gateway or leaf
	// connection the remote server's name.
	Kind Kind   `json:"kind"`
	CID  uint64 `json:"cid"`
	Name string `json:"name,omitempty"`
	// Account: the account of an Ingress; of an Egress, when it differs
	// from the ingress's (a service import); of an import or export.
	Account string `json:"acc,omitempty"`
	// Subject is an Ingress's subject.
	Subject string `json:"subj,omitempty"`
	// Hop is the hop id of an Egress that crosses to another server: the
	// HopHeader of the copy sent, which that server's Report carries.
	Hop string `json:"hop,omitempty"`
	// Sub and Queue are the subscription (and queue group) of an Egress to
	// a client.
	Sub   string `json:"sub,omitempty"`
	Queue string `json:"queue,omitempty"`
	// Error says why an Ingress or an Egress failed (a permission, a
	// closed connection, no echo, ...).
	Error string `json:"error,omitempty"`
	// To and From: a mapping's new subject; an import's or export's.
	To   string `json:"to,omitempty"`
	From string `json:"from,omitempty"`
	// Stream, StreamSubject and NoInterest are a JetStreamStep's.
	Stream        string `json:"stream,omitempty"`
	StreamSubject string `json:"subject,omitempty"`
	NoInterest    bool   `json:"nointerest,omitempty"`
}

// Report is what one server publishes to the DestHeader subject for each
// traced message it processes: where the message entered (the first Step,
// an Ingress), what happened to it there and every connection it was sent
// on (the Egress steps).
type Report struct {
	Server  Server `json:"server"`
	Request struct {
		// Header is the message's headers as the server saw them: the
		// HopHeader tells which copy this report is about.
		Header map[string][]string `json:"header,omitempty"`
		Size   int                 `json:"msgsize,omitempty"`
	} `json:"request"`
	// Hops is how many copies the server sent on to other servers (the
	// egresses that cross); each has a Report of its own.
	Hops  int    `json:"hops,omitempty"`
	Steps []Step `json:"events"`
}

// Hop is the report's hop id: its HopHeader, "" for the first server's.
func (r *Report) Hop() string {
	if v := r.Request.Header[HopHeader]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Ingress is the report's first step, where the message entered the
// server; the zero Step if the report has none.
func (r *Report) Ingress() Step {
	if len(r.Steps) > 0 && r.Steps[0].Type == Ingress {
		return r.Steps[0]
	}
	return Step{}
}

// Egresses are the report's Egress steps, in the server's order.
func (r *Report) Egresses() []Step {
	var out []Step
	for _, s := range r.Steps {
		if s.Type == Egress {
			out = append(out, s)
		}
	}
	return out
}

// Tree is the reports of one traced message, linked by hop: the first
// server's (Root), and for every egress that crosses to another server,
// that server's (Next).
type Tree struct {
	// Reports are the reports in the order they arrived.
	Reports []*Report
	// Skipped counts messages on the trace's inbox that were not reports.
	Skipped int
	// byHop holds the reports by hop id, in arrival order: another
	// message that copied the traced one's headers (a reply echoing
	// them) is reported to the same inbox, under the same ids.
	byHop map[string][]*Report
}

func (t *Tree) add(r *Report) {
	if t.byHop == nil {
		t.byHop = map[string][]*Report{}
	}
	t.Reports = append(t.Reports, r)
	t.byHop[r.Hop()] = append(t.byHop[r.Hop()], r)
}

// Root is the report of the server where the message entered from its
// publisher (the first to arrive without a hop id); nil until it has
// arrived.
func (t *Tree) Root() *Report {
	if rs := t.byHop[""]; len(rs) > 0 {
		return rs[0]
	}
	return nil
}

// Next is the report of the server an egress crossed to (its Hop, from the
// server the egress names); nil if the egress does not cross or that
// report has not arrived. A report with the hop id from another server, or
// of a message that did not come in over a crossing (of a message that
// copied the traced one's headers, such as a reply that echoes them), is not
// taken.
func (t *Tree) Next(e Step) *Report {
	if e.Hop == "" {
		return nil
	}
	return t.hop(e.Hop, e.Name)
}

// hop is the first report of hop id from server ("": any) where the
// message came in over a route, gateway or leaf connection (a reply that
// echoes the hop id comes in from its responder's client connection).
func (t *Tree) hop(id, server string) *Report {
	for _, r := range t.byHop[id] {
		if (server == "" || r.Server.Name == server) && r.Ingress().Kind.Crosses() {
			return r
		}
	}
	return nil
}

// Missing returns the hop ids that the reports announced (their Hops
// count, from the root down: each crossing egress, taken as Next takes it)
// and no report came for, sorted; "" stands for the root when no report at
// all came from the first server.
func (t *Tree) Missing() []string {
	root := t.Root()
	if root == nil {
		return []string{""}
	}
	var missing []string
	var walk func(r *Report)
	walk = func(r *Report) {
		for i := 1; i <= r.Hops; i++ {
			id := strconv.Itoa(i)
			if h := r.Hop(); h != "" {
				id = h + "." + id
			}
			server := ""
			for _, e := range r.Egresses() {
				if e.Hop == id {
					server = e.Name
				}
			}
			// Each level's ids are longer than the last's: the walk ends.
			if next := t.hop(id, server); next != nil {
				walk(next)
			} else {
				missing = append(missing, id)
			}
		}
	}
	walk(root)
	slices.Sort(missing)
	return missing
}

// Complete reports whether every hop has its report (Missing is empty).
func (t *Tree) Complete() bool { return len(t.Missing()) == 0 }

// Servers returns the names of the servers that reported, in arrival order.
func (t *Tree) Servers() []string {
	var names []string
	for _, r := range t.Reports {
		names = append(names, r.Server.Name)
	}
	return names
}

// String draws the tree, one line a step: the subject and the server the
// message entered, from which connection; then, indented, each egress: a
// client's connection with its subscription and queue group, or a route,
// gateway or leaf crossing followed by what the next server did. A hop
// with no report says so.
//
//	greet.joe entered node-2 from client "singlereply requester"
//	└─ route to node-1
//	   └─ client "singlereply service" (sub greet.*)
func (t *Tree) String() string {
	root := t.Root()
	if root == nil {
		return "no report from the first server\n"
	}
	var b strings.Builder
	in := root.Ingress()
	fmt.Fprintf(&b, "%s entered %s from %s%s\n", in.Subject, root.Server.Name, conn(in), failed(in))
	t.draw(&b, root, "")
	return b.String()
}

// draw writes r's steps after its ingress, indented by prefix.
func (t *Tree) draw(b *strings.Builder, r *Report, prefix string) {
	var steps []Step
	for _, s := range r.Steps {
		if s.Type != Ingress {
			steps = append(steps, s)
		}
	}
	for i, s := range steps {
		branch, more := "├─ ", "│  "
		if i == len(steps)-1 {
			branch, more = "└─ ", "   "
		}
		b.WriteString(prefix + branch)
		switch s.Type {
		case Egress:
			if !s.Kind.Crosses() {
				fmt.Fprintf(b, "%s%s%s\n", conn(s), subscription(s), failed(s))
				continue
			}
			next := t.Next(s)
			if next == nil {
				fmt.Fprintf(b, "%s to %s%s (hop %s: no report)\n", s.Kind, s.Name, failed(s), s.Hop)
				continue
			}
			to := next.Server.Name
			if s.Kind == Gateway && next.Server.Cluster != "" {
				to += " (cluster " + next.Server.Cluster + ")"
			}
			fmt.Fprintf(b, "%s to %s%s\n", s.Kind, to, failed(s))
			t.draw(b, next, prefix+more)
		case SubjectMapping:
			fmt.Fprintf(b, "mapped to %s\n", s.To)
		case ServiceImport:
			fmt.Fprintf(b, "service import %s → %s (account %s)\n", s.From, s.To, s.Account)
		case StreamExport:
			fmt.Fprintf(b, "stream export to %s (account %s)\n", s.To, s.Account)
		case JetStreamStep:
			fmt.Fprintf(b, "stream %s%s\n", s.Stream, failed(s))
		default:
			fmt.Fprintf(b, "%s\n", s.Type)
		}
	}
}

// conn names a step's connection: its kind, then its name, or its cid when
// it has none.
func conn(s Step) string {
	if s.Name == "" {
		return fmt.Sprintf("%s cid %d", s.Kind, s.CID)
	}
	if s.Kind == Client {
		return fmt.Sprintf("%s %q", s.Kind, s.Name)
	}
	return fmt.Sprintf("%s %s", s.Kind, s.Name)
}

// subscription is an egress's subscription and queue group, in brackets.
func subscription(s Step) string {
	switch {
	case s.Queue != "":
		return fmt.Sprintf(" (sub %s, queue %s)", s.Sub, s.Queue)
	case s.Sub != "":
		return fmt.Sprintf(" (sub %s)", s.Sub)
	}
	return ""
}

// failed is a step's error, if any, as a suffix.
func failed(s Step) string {
	if s.Error == "" {
		return ""
	}
	return ": " + s.Error
}

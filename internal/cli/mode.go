// The -serve and -request flags every scenario shares.

package cli

import (
	"context"
	"flag"
)

// Mode says which halves of a scenario a run plays: both by default, or only
// the responder side (-serve, until interrupted) or only the requester side
// (-request), so the halves can run in separate terminals against one
// NATS_URL and talk to the nats CLI (`nats reply`, `nats request`).
type Mode struct {
	// Serve runs only the responders, until SIGINT/SIGTERM.
	Serve bool
	// Request runs only the requester, against responders running elsewhere.
	Request bool
}

// AddFlags registers -serve and -request on fs, writing to m.
func (m *Mode) AddFlags(fs *flag.FlagSet) {
	fs.BoolVar(&m.Serve, "serve", false, "run only the responder side, until interrupted")
	fs.BoolVar(&m.Request, "request", false, "run only the requester side, against responders elsewhere (NATS_URL)")
}

// Check rejects -serve and -request together, with an error wrapping ErrUsage.
func (m *Mode) Check() error {
	if m.Serve && m.Request {
		return Usagef("-serve and -request exclude each other; give neither to run both halves")
	}
	return nil
}

// Serves reports whether this run starts the responders.
func (m *Mode) Serves() bool { return !m.Request }

// Requests reports whether this run sends the requests.
func (m *Mode) Requests() bool { return !m.Serve }

// WaitForInterrupt blocks until ctx is done (SIGINT/SIGTERM in a program) and
// returns nil: the end of a -serve run is a normal stop.
func WaitForInterrupt(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// The -serve and -request flags every scenario shares.

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
)

// Mode says which halves of a scenario a run plays: both by default, or only
// the responder side (-serve, until interrupted) or only the requester side
// (-request), so the halves can run in separate terminals against one
// NATS_URL and talk to the nats CLI (`nats reply`, `nats request`).
type Mode struct {
	// Serve runs only the responders, until SIGINT/SIGTERM, or until a
	// connection is closed for good (see WaitForInterrupt).
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

// WaitForInterrupt blocks until ctx is done and returns nil when a signal
// (SIGINT/SIGTERM) or the caller ended it: the end of a -serve run is a
// normal stop. When Main ended ctx because a connection was closed for good,
// it returns that cause, wrapping ErrConnectionLost: a -serve that can no
// longer serve exits 1 and says why.
func WaitForInterrupt(ctx context.Context) error {
	<-ctx.Done()
	if cause := context.Cause(ctx); errors.Is(cause, ErrConnectionLost) {
		return cause
	}
	return nil
}

// SetFlags returns the names of the flags given on fs's command line (after
// fs.Parse), so a program can refuse a flag that its mode would ignore.
func SetFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// Refuse returns an error wrapping ErrUsage naming the first of names given
// on the command line (set, from SetFlags), which the mode described by why
// ignores; nil if none was given.
func Refuse(set map[string]bool, why string, names ...string) error {
	for _, n := range names {
		if set[n] {
			return Usagef("-%s does nothing %s", n, why)
		}
	}
	return nil
}

// SetUsage makes fs's -h print a usage line, a paragraph saying what the
// program shows, then the flags.
func SetUsage(fs *flag.FlagSet, synopsis, about string) {
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: %s\n\n%s\n\nflags:\n", synopsis, about)
		fs.PrintDefaults()
	}
}

// What a singlereply run is asked to do (Config), and its error when
// requests failed (failures).

package main

import (
	"errors"
	"fmt"
	"time"

	"reqreply/internal/cli"
)

// DefaultNames are the names greeted when none are given as arguments.
var DefaultNames = []string{"joe", "sue", "bob"}

// Lockdown is the program's -secure setup: the requester may publish only
// to GreetSubjects and read only its own inbox; the responder may take only those
// requests and publish only its replies (see cli.Lockdown).
var Lockdown = cli.Lockdown{Service: []string{GreetSubjects}}

// Config is what the singlereply program was asked to do.
type Config struct {
	// Names to greet, one request each, in order.
	Names []string
	// Timeout for each request; DefaultTimeout (500 ms) unless -timeout.
	Timeout time.Duration
	// Mode: both halves, or only -serve or -request.
	Mode cli.Mode
	// MsgTrace: -msgtrace traces the first request (cli.MsgTrace).
	MsgTrace cli.MsgTrace
}

// Check validates cfg before anything connects: every name must be one
// subject token and the timeout positive. The error wraps cli.ErrUsage.
func (cfg *Config) Check() error {
	if err := cfg.Mode.Check(); err != nil {
		return err
	}
	if cfg.Timeout <= 0 {
		return cli.Usagef("-timeout %v must be > 0", cfg.Timeout)
	}
	for _, name := range cfg.Names {
		if _, err := GreetSubject(name); err != nil {
			return cli.Usagef("%w", err)
		}
	}
	return nil
}

// MaxFailuresShown is how many failed requests Run's error names: 5. The
// others are counted ("and 12 more"), so that a run of many names that
// all fail says so in a line that can be read.
const MaxFailuresShown = 5

// failures is Run's error when requests failed: "<failed> of <sent>
// requests failed: " and the first MaxFailuresShown errors, one a line,
// then "and N more" for the others. It unwraps to every error, first to
// last, so errors.Is matches each.
type failures struct {
	sent int
	errs []error
}

func (f failures) Error() string {
	shown := f.errs[:min(len(f.errs), MaxFailuresShown)]
	msg := fmt.Sprintf("%d of %d requests failed: %v", len(f.errs), f.sent, errors.Join(shown...))
	if more := len(f.errs) - len(shown); more > 0 {
		msg += fmt.Sprintf("\nand %d more", more)
	}
	return msg
}

func (f failures) Unwrap() []error { return f.errs }

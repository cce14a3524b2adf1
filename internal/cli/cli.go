// Package cli is what every scenario program shares around its pattern, so
// that every program keeps the same promises: parsing flags into one line of
// error and an exit code, refusing usage that would be ignored, finding the
// NATS server (NATS_URL or an embedded one), opening named connections that
// print their disconnect, reconnect and close events and follow one
// reconnect policy (-reconnect-wait, -max-reconnects), ending the run on
// SIGINT/SIGTERM or on a connection lost for good, draining the connections
// at the end, and never printing a credential.
//
// Exit codes follow the Go tools: 0 done (also after Ctrl-C, once the
// connections are drained), 1 a runtime failure, 2 bad usage. Exec has the
// details.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// Exit codes returned by Main.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// ErrUsage marks an error in the program's arguments; Main exits 2 for it.
var ErrUsage = errors.New("bad usage")

// Usagef returns an error wrapping ErrUsage, for a scenario's flag checks.
// Its message is the formatted text alone; errors.Is(err, ErrUsage) holds,
// and so does errors.Is for any error among args formatted with %w.
func Usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

type usageError struct{ err error }

func (u usageError) Error() string   { return u.err.Error() }
func (u usageError) Unwrap() []error { return []error{ErrUsage, u.err} }

// Main runs a scenario program and returns its exit code: Exec with the
// process's environment and stderr.
func Main(fs *flag.FlagSet, args []string, check func() error, run func(ctx context.Context, env *Env) error) int {
	return Exec(fs, args, check, run, os.Getenv, os.Stderr)
}

// Exec runs a scenario program and returns its exit code. These are the
// promises every program keeps, because they are kept here:
//
// Flags. Exec adds -reconnect-wait and -max-reconnects (see Reconnect) to
// fs and parses args with it. An unknown flag or a bad value is one line on
// stderr and exit 2; -h prints the usage, exit 0. An argument that begins
// with '-' after the first argument that is not a flag is refused (exit 2):
// Go's flag package stops at the first argument, so `prog joe -timeout 1s`
// would otherwise take "-timeout" as a name; "--" before it lets it through.
// Then check runs the scenario's own checks (an error: one line, exit 2).
//
// Servers. NATS_URL (read with getenv) names them; unset, an embedded
// server runs in the process. A NATS_URL that does not parse is refused
// (exit 2). -request with NATS_URL unset is refused (exit 2): the embedded
// server would have no responders.
//
// The run. run gets a context that the first SIGINT or SIGTERM ends; it
// also ends when a connection is lost for good (Env.Lost), with a cause
// wrapping ErrConnectionLost. A connection attempt under way is aborted by
// the first signal too. After run returns, a second signal ends the process
// at once; the connections are drained (Env.Close) and the embedded server
// stopped.
//
// Exit. 0 when run returned nil, or when a signal ended the run and every
// connection drained ("interrupted; connections drained", one line). 1 for
// a run error (one line; 2 if it wraps ErrUsage), for a connection lost for
// good (its event, "connection closed for good: <why>", is that line), or
// for a drain that failed or ran out of time (nats.ErrDrainTimeout: messages
// were lost; one line). Each error is printed once, and no line shows a
// credential (see Redact).
//
// Connection events go to stderr as they happen (see Env).
func Exec(fs *flag.FlagSet, args []string, check func() error, run func(ctx context.Context, env *Env) error, getenv func(string) string, stderr io.Writer) int {
	name := fs.Name()
	// Until the Env exists, the credentials to mask are NATS_URL's; then
	// the Env's, which may have more (Env.AddSecret).
	mask := newScrubber(strings.TrimSpace(getenv("NATS_URL"))).scrub
	say := func(format string, args ...any) {
		fmt.Fprintln(stderr, mask(strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "; ")))
	}
	usage := func(err error) int {
		say("%s: %v (run with -h for usage)", name, err)
		return ExitUsage
	}

	reconnect := DefaultReconnect
	if fs.Lookup("reconnect-wait") == nil {
		reconnect.AddFlags(fs)
	}
	topology := topologyFlag(fs) // -cluster, unless the program registered it
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
			return ExitOK
		}
		return usage(err)
	}
	if err := checkArgs(fs, args); err != nil {
		return usage(err)
	}
	if err := reconnect.Check(); err != nil {
		return usage(err)
	}
	if check != nil {
		if err := check(); err != nil {
			return usage(err)
		}
	}
	if f := fs.Lookup("request"); f != nil && f.Value.String() == "true" && strings.TrimSpace(getenv("NATS_URL")) == "" {
		return usage(Usagef("-request needs NATS_URL: an embedded server would have nobody to answer; start the -serve half and set NATS_URL to the server it prints"))
	}

	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancelCause(sigCtx)
	defer cancel(nil)
	env, err := FromTopology(name, *topology, getenv, stderr)
	if err != nil {
		if errors.Is(err, ErrUsage) {
			return usage(err)
		}
		say("%s: %v", name, err)
		return ExitFailure
	}
	env.Reconnect = reconnect
	env.ctx = ctx
	mask = env.Scrub
	// After the first signal, Go's default handling is back: a second
	// SIGINT or SIGTERM ends the program at once, whatever it is waiting on.
	// A connection lost for good ends the run with its cause.
	watched := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-sigCtx.Done():
			stop()
		case <-env.Lost():
			cancel(env.LostErr())
		case <-watched:
		}
	})
	err = run(ctx, env)
	close(watched)
	wg.Wait()
	interrupted := sigCtx.Err() != nil
	lost := env.LostErr()
	// From here a second Ctrl-C ends the program at once, as Go's default
	// handling does, instead of waiting out a stuck drain.
	stop()
	cerr := env.Close()
	switch {
	case interrupted && cerr != nil:
		say("%s: interrupted; drain: %v", name, cerr)
		return ExitFailure
	case interrupted:
		// The connections are drained; that is a clean stop.
		say("%s: interrupted; connections drained", name)
		return ExitOK
	}
	code := ExitOK
	switch {
	case lost != nil:
		// The run ended because its connection did, which the connection's
		// event has said, with the time and the reason; the run's own
		// error, if it is not just that, is the one line left to print.
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrConnectionLost) {
			say("%s: %v", name, err)
		}
		code = ExitFailure
	case err != nil && errors.Is(err, ErrUsage):
		return usage(err)
	case err != nil:
		say("%s: %v", name, err)
		code = ExitFailure
	}
	if cerr != nil {
		say("%s: drain: %v", name, cerr)
		code = ExitFailure
	}
	return code
}

// checkArgs refuses an argument that begins with '-' after the first
// argument that is not a flag, unless "--" came before it: a flag given
// after a name, which Go's flag package would take as a name.
func checkArgs(fs *flag.FlagSet, args []string) error {
	rest := fs.Args()
	if len(rest) == 0 {
		return nil
	}
	if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
		return nil
	}
	for _, a := range rest {
		if strings.HasPrefix(a, "-") && a != "-" {
			return Usagef("%q after the argument %q: flags go before arguments (use -- before an argument that begins with '-')", a, rest[0])
		}
	}
	return nil
}

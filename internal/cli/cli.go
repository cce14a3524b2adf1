// Package cli is what every scenario program shares around its pattern, so
// that every program keeps the same promises: parsing flags into one line of
// error and an exit code, refusing usage that would be ignored, finding the
// NATS server (NATS_URL or an embedded one), opening named connections that
// print their disconnect, reconnect and close events and follow one
// reconnect policy (-reconnect-wait, -max-reconnects), ending the run on
// SIGINT/SIGTERM or on a connection lost for good, draining the connections
// at the end, and never printing a credential. Credentials come from a nats
// CLI context (-context, NATS_CONTEXT) or NATS_* variables
// (LoadCredentials); -secure runs a program locked down (Lockdown); and
// every connection's permission denials are made prompt (package
// reqreply/denials is chained in front of its error handler), so a request
// whose publish or inbox the server denies fails within one round trip with
// an error naming the subject.
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

	"github.com/nats-io/nats.go"

	"reqreply/internal/telemetry"
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

// Option is something a program adds to Main and Exec.
type Option func(*settings)

type settings struct {
	lock func() Lockdown
}

// Secure gives the program the -secure flag: with it, the run happens on an
// embedded server locked down as lock says (see Lockdown and
// EmbeddedSecure), and each connection must say its part (Env.ConnectAs).
func Secure(lock Lockdown) Option {
	return SecureWith(func() Lockdown { return lock })
}

// SecureWith is Secure with the Lockdown made after the flags are parsed
// and checked, for one that depends on them: a connection that carries
// several responders replies to one request once per responder, so its
// MaxReplies must count them.
func SecureWith(lock func() Lockdown) Option {
	return func(s *settings) { s.lock = lock }
}

// Main runs a scenario program and returns its exit code: Exec with the
// process's environment and stderr.
func Main(fs *flag.FlagSet, args []string, check func() error, run func(ctx context.Context, env *Env) error, opts ...Option) int {
	return Exec(fs, args, check, run, os.Getenv, os.Stderr, opts...)
}

// Exec runs a scenario program and returns its exit code. These are the
// promises every program keeps, because they are kept here:
//
// Flags. Exec adds -reconnect-wait and -max-reconnects (see Reconnect),
// -context (see LoadCredentials), -metrics (see Telemetry below) and, for a program given Secure, -secure
// to fs and parses args with it. An unknown flag or a bad value is one line on
// stderr and exit 2; -h prints the usage, exit 0. An argument that begins
// with '-' after the first argument that is not a flag is refused (exit 2):
// Go's flag package stops at the first argument, so `prog joe -timeout 1s`
// would otherwise take "-timeout" as a name; "--" before it lets it through.
// Then check runs the scenario's own checks (an error: one line, exit 2).
//
// Servers and credentials, first that applies: -secure (an embedded server
// with a user per part, see Lockdown), -context NAME (a nats CLI context),
// the environment (NATS_CONTEXT, NATS_URL, NATS_USER, ... read with getenv;
// see LoadCredentials), else an embedded server in the process. What the
// chosen source leaves unused of the environment is said in one line. A
// NATS_URL that does not parse is refused (exit 2), and so are credentials
// without a server. -request without a server (NATS_URL or a context) is
// refused (exit 2): the embedded server would have no responders; -secure
// with -serve or -request too: its users' passwords are made for this run.
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
// Telemetry (package reqreply/internal/telemetry): the OTEL_* variables
// turn on traces (OTEL_TRACES_EXPORTER=console|otlp; unset or none: off),
// and -metrics ADDR serves Prometheus text on http://ADDR/metrics while the
// program runs, announced in one line. A bad ADDR (not host:port, or busy)
// or an exporter that cannot be made is refused (exit 2). What is not yet
// exported is flushed after the connections are drained, on every exit; an
// export that failed is one line, and leaves the exit code alone.
//
// Connection events go to stderr as they happen (see Env).
func Exec(fs *flag.FlagSet, args []string, check func() error, run func(ctx context.Context, env *Env) error, getenv func(string) string, stderr io.Writer, opts ...Option) int {
	name := fs.Name()
	var set settings
	for _, o := range opts {
		o(&set)
	}
	// Until the Env exists, the credentials to mask are the environment's;
	// then the Env's, which may have more (a context's, -secure's).
	mask := newScrubber(strings.TrimSpace(getenv("NATS_URL")), strings.TrimSpace(getenv("NATS_PASSWORD")), strings.TrimSpace(getenv("NATS_TOKEN"))).scrub
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
	if fs.Lookup("context") == nil {
		fs.String("context", "", "connect with the nats CLI context `NAME`: its URL, credentials, TLS files and inbox prefix, ahead of NATS_CONTEXT and the NATS_* variables (the context the nats CLI has selected is used only when named)")
	}
	secure := false
	if set.lock != nil && fs.Lookup("secure") == nil {
		fs.BoolVar(&secure, "secure", false, "run locked down: an embedded nats-server where the requester may only publish requests and read its own inbox, and the responder may only take requests and reply (see security/locked-down.conf)")
	}
	topology := topologyFlag(fs) // -cluster, unless the program registered it
	metricsAddr := ""
	if fs.Lookup("metrics") == nil {
		fs.StringVar(&metricsAddr, "metrics", "", "serve the run's metrics as Prometheus text on http://`ADDR`/metrics while it runs (host:port, e.g. 127.0.0.1:9464); traces: the OTEL_* variables (OTEL_TRACES_EXPORTER=console|otlp|none)")
	}
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
	if err := telemetry.CheckAddr(metricsAddr); err != nil {
		return usage(err)
	}
	contextName := fs.Lookup("context").Value.String()
	flagOn := func(n string) bool { f := fs.Lookup(n); return f != nil && f.Value.String() == "true" }
	if secure {
		switch {
		case contextName != "":
			return usage(Usagef("-secure and -context exclude each other: -secure runs its own server and users"))
		case flagOn("serve"), flagOn("request"):
			return usage(Usagef("-secure runs both halves: its users' passwords are made for this run; to run the halves apart, use a server started with security/locked-down.conf"))
		}
	}
	hasServer := contextName != "" || strings.TrimSpace(getenv("NATS_URL")) != "" || strings.TrimSpace(getenv("NATS_CONTEXT")) != ""
	if flagOn("request") && !hasServer {
		return usage(Usagef("-request needs NATS_URL: an embedded server would have nobody to answer; start the -serve half and set NATS_URL (or name a nats context) to the server it prints"))
	}
	var lock *Lockdown
	if secure {
		l := set.lock()
		lock = &l
	}
	// OpenTelemetry, as the OTEL_* variables and -metrics ask: on before
	// the first connection, flushed after the last drain (the responders'
	// spans end there), on every way out.
	tel, err := telemetry.Start(context.Background(), name, metricsAddr)
	if err != nil {
		return usage(err)
	}
	defer func() {
		if err := tel.Shutdown(context.Background()); err != nil {
			say("%s: telemetry: %v", name, err)
		}
	}()
	if tel.MetricsURL != "" {
		say("%s: serving metrics at %s", name, tel.MetricsURL)
	}

	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancelCause(sigCtx)
	defer cancel(nil)
	var env *Env
	if topology.Kind == Single {
		env, err = fromSources(name, contextName, lock, getenv, stderr)
	} else {
		// An embedded cluster, leaf or supercluster has servers and no
		// users of its own: credentials and -secure do not apply to it.
		if lock != nil || contextName != "" {
			return usage(Usagef("an embedded %s has no users: it does not combine with -secure or -context", topology.describe()))
		}
		env, err = FromTopology(name, *topology, getenv, stderr)
	}
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
		lost := env.Lost()
		for {
			select {
			case <-sigCtx.Done():
				stop()
				return
			case <-lost:
				cancel(env.LostErr())
				lost = nil // and go on watching for a signal
			case <-watched:
				return
			}
		}
	})
	err = run(ctx, env)
	interrupted := sigCtx.Err() != nil
	// The watcher keeps going while the connections drain: a first Ctrl-C
	// during the final drain ends ctx (so handlers that watch it can
	// finish) and, like any first Ctrl-C, hands signals back to Go's
	// default handling, so that a second one ends the program at once
	// instead of waiting out a stuck drain. The drain itself is bounded
	// (DrainTimeout) either way.
	cerr := env.Close()
	close(watched)
	wg.Wait()
	stop()
	// Read after Close, which waits for the closed handlers of the
	// connections already closed: a run that saw its connection close
	// (nats.ErrConnectionClosed) may return before the handler said so.
	lost := env.LostErr()
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
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrConnectionLost) && !errors.Is(err, nats.ErrConnectionClosed) {
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

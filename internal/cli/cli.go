// Package cli is what every scenario program shares around its pattern:
// parsing flags into one line of error and an exit code, finding the NATS
// server (NATS_URL or an embedded one), opening named connections, and
// draining them when the program ends or receives SIGINT/SIGTERM.
//
// Exit codes follow the Go tools: 0 done (also after Ctrl-C, once the
// connections are drained), 1 a runtime failure, 2 bad usage.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"reqreply/internal/testserver"
)

// Exit codes returned by Main.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// DrainTimeout bounds how long Env.Close waits for one connection to drain:
// pending replies are sent and in-flight handlers finish. 5 s.
const DrainTimeout = 5 * time.Second

// ConnectTimeout bounds each attempt to reach a server: 2 s, nats.go's default.
const ConnectTimeout = 2 * time.Second

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

// Env is where a scenario runs: the server URLs and the connections the
// scenario opened through it. Its zero value is not usable; make one with
// NewEnv or FromEnvironment.
type Env struct {
	// Scenario names the program; connections are named "<Scenario> <role>".
	Scenario string
	// URL is a comma-separated list of server URLs, as NATS_URL holds it.
	URL string

	embedded *server.Server
	mu       sync.Mutex
	conns    []conn
	closed   bool
}

type conn struct {
	nc     *nats.Conn
	closed chan struct{}
}

// NewEnv returns an Env that connects to url (a comma-separated list of
// server URLs). Tests make theirs this way with a testserver URL, so they run
// the scenario's code exactly as the program does.
func NewEnv(scenario, url string) *Env {
	return &Env{Scenario: scenario, URL: url}
}

// Embedded returns an Env on a nats-server started here, in this process
// (testserver.Start): what a program uses when NATS_URL is unset, and what
// the Examples run on. Env.Close drains its connections, then stops the
// server. The error wraps testserver.ErrNotReady if the server does not
// come up.
func Embedded(scenario string) (*Env, error) {
	s, err := testserver.Start()
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	env := NewEnv(scenario, s.ClientURL())
	env.embedded = s
	return env, nil
}

// FromEnvironment returns an Env for the servers in NATS_URL (read with
// getenv), or, when NATS_URL is unset or empty, an Embedded one, announced
// on stderr in one line. Env.Close stops it.
func FromEnvironment(scenario string, getenv func(string) string, stderr io.Writer) (*Env, error) {
	if url := strings.TrimSpace(getenv("NATS_URL")); url != "" {
		return NewEnv(scenario, url), nil
	}
	env, err := Embedded(scenario)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "%s: NATS_URL is unset; using an embedded nats-server at %s (set NATS_URL=nats://host:4222 to use your own)\n", scenario, env.URL)
	return env, nil
}

// Connect opens a connection named "<scenario> <role>" (the name servers
// show in connz and `nats server report connections`) to env's servers. It
// fails fast when no server answers within ConnectTimeout (the error wraps
// nats.ErrNoServers for a refused connection, or the dial's own error); once
// connected, nats.go reconnects on its own. A denied subscription fails a
// synchronous subscription's NextMsg with nats.ErrPermissionViolation
// (nats.PermissionErrOnSubscribe). Asynchronous errors, such as a slow
// consumer dropping messages or a denied publish, are written to stderr. Extra opts follow the defaults and may override them,
// except the closed handler, which Env keeps to know when a drain is over.
// After Close, or when Close runs while it dials, the error wraps
// nats.ErrConnectionClosed and no connection is left open.
func (e *Env) Connect(role string, opts ...nats.Option) (*nats.Conn, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, fmt.Errorf("connect %s %s: %w", e.Scenario, role, nats.ErrConnectionClosed)
	}
	e.mu.Unlock()
	closed := make(chan struct{})
	all := append([]nats.Option{
		nats.Name(e.Scenario + " " + role),
		nats.Timeout(ConnectTimeout),
		nats.DrainTimeout(DrainTimeout),
		// A denied subscription then fails NextMsg with
		// nats.ErrPermissionViolation instead of looking like silence.
		nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				fmt.Fprintf(os.Stderr, "%s %s: on %q: %v\n", e.Scenario, role, sub.Subject, err)
				return
			}
			fmt.Fprintf(os.Stderr, "%s %s: %v\n", e.Scenario, role, err)
		}),
	}, opts...)
	all = append(all, nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	nc, err := nats.Connect(e.URL, all...)
	if err != nil {
		return nil, fmt.Errorf("connect %s %s to %s: %w", e.Scenario, role, Redact(e.URL), err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		// Close ran while we were dialing and will not drain this one.
		nc.Close()
		return nil, fmt.Errorf("connect %s %s: %w", e.Scenario, role, nats.ErrConnectionClosed)
	}
	e.conns = append(e.conns, conn{nc: nc, closed: closed})
	return nc, nil
}

// Close drains every connection Env opened, newest first, waiting up to
// DrainTimeout for each, then stops the embedded server if there is one.
// Draining lets handlers finish and replies go out before the connection
// closes: the NATS way to stop a service without failing its requests.
// It is safe to call more than once, also from several goroutines: only the
// first call drains. The error names each connection whose drain failed,
// and wraps nats.ErrDrainTimeout for one that ran out of time (nats.go then
// closes it, dropping what it had not handled).
func (e *Env) Close() error {
	e.mu.Lock()
	conns, embedded := e.conns, e.embedded
	e.conns, e.embedded = nil, nil
	e.closed = true
	e.mu.Unlock()
	var errs []error
	for i := len(conns) - 1; i >= 0; i-- {
		c := conns[i]
		name := c.nc.Opts.Name
		err := c.nc.Drain()
		if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			c.nc.Close()
		}
		select {
		case <-c.closed:
			// nats.go closes a connection whose drain ran out of time and
			// leaves the reason as its last error: that drain lost messages.
			if err == nil && errors.Is(c.nc.LastError(), nats.ErrDrainTimeout) {
				errs = append(errs, fmt.Errorf("%s: %w", name, nats.ErrDrainTimeout))
			}
		case <-time.After(DrainTimeout + time.Second):
			errs = append(errs, fmt.Errorf("%s: %w", name, nats.ErrDrainTimeout))
			c.nc.Close()
		}
	}
	if embedded != nil {
		testserver.Shutdown(embedded)
	}
	return errors.Join(errs...)
}

// Redact returns urls, a comma-separated list of server URLs, with any
// password, or a token given alone in the user part, replaced by "xxxxx",
// for printing.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, hasPassword := u.User.Password(); !hasPassword {
			u.User = url.User("xxxxx") // nats://<token>@host
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}

// Main runs a scenario program and returns its exit code. It parses args
// with fs (an unknown flag or bad value: one line on stderr, exit 2; -h: the
// usage, exit 0), calls check for the scenario's own argument checks (an
// error: one line, exit 2), finds the servers with FromEnvironment, and calls
// run with a context that SIGINT or SIGTERM cancels. After run returns, the
// connections are drained and the embedded server stopped. A run error is
// one line on stderr and exit 1 (2 if it wraps ErrUsage), unless a signal
// ended the run: that is a normal stop, exit 0. A drain that fails or runs
// out of time (nats.ErrDrainTimeout: messages were lost) is one more line and
// exit 1. After the first signal, or once run has returned, a second SIGINT
// ends the program at once.
func Main(fs *flag.FlagSet, args []string, check func() error, run func(ctx context.Context, env *Env) error) int {
	return main(fs, args, check, run, os.Getenv, os.Stderr)
}

func main(fs *flag.FlagSet, args []string, check func() error, run func(ctx context.Context, env *Env) error, getenv func(string) string, stderr io.Writer) int {
	name := fs.Name()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
			return ExitOK
		}
		fmt.Fprintf(stderr, "%s: %v (run with -h for usage)\n", name, err)
		return ExitUsage
	}
	if check != nil {
		if err := check(); err != nil {
			fmt.Fprintf(stderr, "%s: %v (run with -h for usage)\n", name, err)
			return ExitUsage
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, Go's default handling is back: a second
	// SIGINT or SIGTERM ends the program at once, whatever it is waiting on.
	go func() {
		<-ctx.Done()
		stop()
	}()
	env, err := FromEnvironment(name, getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitFailure
	}
	err = run(ctx, env)
	interrupted := ctx.Err() != nil
	// From here a second Ctrl-C ends the program at once, as Go's default
	// handling does, instead of waiting out a stuck drain.
	stop()
	cerr := env.Close()
	switch {
	case cerr != nil:
		if err != nil && !interrupted {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
		}
		fmt.Fprintf(stderr, "%s: drain: %s\n", name, strings.ReplaceAll(cerr.Error(), "\n", "; "))
		return ExitFailure
	case err == nil:
		return ExitOK
	case interrupted:
		// Interrupted: the connections are drained; that is a clean stop.
		fmt.Fprintf(stderr, "%s: interrupted; connections drained\n", name)
		return ExitOK
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s: %v (run with -h for usage)\n", name, err)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitFailure
	}
}

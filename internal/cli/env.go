// Env: where a scenario runs, the connections it opens there, what they say
// on stderr while they live, and how they end.

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"reqreply/denials"
	"reqreply/internal/testserver"
	"reqreply/probe"
)

// Every program's readiness probes (package probe) end within one round
// trip when the server's permissions deny a probe, its inbox or a
// responder's answer: the checks of package denials, whose dispatcher
// every Env connection has, are installed for the process.
func init() { probe.UseChecks(denials.ProbeChecks{}) }

// DrainTimeout bounds how long Env.Close waits for one connection to drain:
// pending replies are sent and in-flight handlers finish. 5 s.
const DrainTimeout = 5 * time.Second

// ConnectTimeout bounds each attempt to reach a server: 2 s, nats.go's default.
const ConnectTimeout = 2 * time.Second

// ErrConnectionLost is wrapped by the error of a connection closed for good
// while the program still needed it: its server went away and the
// reconnect policy (Reconnect) gave up. Env.Lost reports it; Main then ends
// the run and exits 1.
var ErrConnectionLost = errors.New("connection closed for good")

// Env is where a scenario runs: the server URLs and the connections the
// scenario opened through it. Its zero value is not usable; make one with
// NewEnv, Embedded or FromEnvironment.
//
// Every connection it opens prints its events on Stderr, one line each,
// starting with the time (UTC, ms) and "<scenario> <role>:": disconnected
// from a server (with the error and the reconnect policy), reconnected (with
// the server), and closed, unless Close closed it or the program closed it
// itself without an error. URLs and errors in those
// lines have their credentials masked.
type Env struct {
	// Scenario names the program; connections are named "<Scenario> <role>".
	Scenario string
	// URL is a comma-separated list of server URLs, as NATS_URL holds it.
	URL string
	// Reconnect is the policy of every connection opened after it is set;
	// DefaultReconnect unless changed (Main sets it from the flags).
	Reconnect Reconnect
	// Stderr receives the connection events and asynchronous errors;
	// os.Stderr unless changed before the first Connect.
	Stderr io.Writer

	// ctx, when it ends, aborts the connection attempts under way (Main
	// ends it on the first SIGINT or SIGTERM).
	ctx      context.Context
	creds    []nats.Option     // every connection's credentials (LoadCredentials)
	ids      map[Part]Identity // under -secure: the user of each part
	drainFor time.Duration     // DrainTimeout; shorter in tests
	scrub    *scrubber
	embedded *server.Server
	storeDir string     // the embedded servers' JetStream store, removed by Close
	net      network    // the nodes; embedded ones are stopped by Close (topology.go)
	outMu    sync.Mutex // serializes lines on Stderr

	mu       sync.Mutex
	conns    []*conn
	placed   map[string]bool // "<role> <node>" announced by ConnectNodeAs
	closed   bool
	lost     chan struct{} // closed on the first connection lost for good
	lostErr  error
	lostOnce sync.Once
}

// conn is one connection of an Env and what its event handlers know of it.
type conn struct {
	nc     *nats.Conn
	role   string
	closed chan struct{}

	mu           sync.Mutex
	closing      bool   // Env.Close is draining it: its end is expected
	disconnected bool   // between a disconnect and a reconnect
	server       string // the server it was last connected to, masked
}

// NewEnv returns an Env that connects to url (a comma-separated list of
// server URLs). Tests make theirs this way with a testserver URL, so they run
// the scenario's code exactly as the program does.
func NewEnv(scenario, url string) *Env {
	return &Env{
		Scenario:  scenario,
		URL:       url,
		Reconnect: DefaultReconnect,
		Stderr:    os.Stderr,
		ctx:       context.Background(),
		drainFor:  DrainTimeout,
		scrub:     newScrubber(url),
		lost:      make(chan struct{}),
	}
}

// Embedded returns an Env on a nats-server started here, in this process
// (testserver.Start): what a program uses when NATS_URL is unset, and what
// the Examples run on. It runs JetStream, with its store in a fresh
// temporary directory (for a key-value bucket: tail -demo charge).
// Env.Close drains its connections, then stops the server and removes the
// directory. The error wraps testserver.ErrNotReady if the server does not
// come up, or the temporary directory's error.
func Embedded(scenario string) (*Env, error) {
	dir, err := os.MkdirTemp("", scenario+"-jetstream-")
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	s, err := testserver.Start(testserver.WithJetStream(dir))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	env := NewEnv(scenario, s.ClientURL())
	env.embedded, env.storeDir = s, dir
	return env, nil
}

// EmbeddedSecure returns an Env on a nats-server started here with the
// users and permissions of lock (see Lockdown): what -secure runs. Its
// connections must say their part (ConnectAs); each then connects as that
// part's user, with a password made for this server and masked in all
// output. Env.Close stops the server. The error wraps testserver.ErrNotReady
// if the server does not come up.
func EmbeddedSecure(scenario string, lock Lockdown) (*Env, error) {
	users, ids := lock.Users()
	s, err := testserver.Start(testserver.WithUsers(users...))
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	env := NewEnv(scenario, s.ClientURL())
	env.embedded = s
	env.ids = ids
	for _, id := range ids {
		env.scrub.add(id.Password)
	}
	return env, nil
}

// FromCredentials returns an Env that connects to creds.URL with creds's
// options on every connection, its secrets masked (see LoadCredentials).
func FromCredentials(scenario string, creds *Credentials) *Env {
	env := NewEnv(scenario, creds.URL)
	env.creds = creds.Options
	for _, s := range creds.Secrets {
		env.scrub.add(s)
	}
	return env
}

// FromEnvironment returns an Env for the servers and credentials in the
// environment (read with getenv; see LoadCredentials: NATS_CONTEXT,
// NATS_URL, NATS_USER, ...), or, when they name no server, an Embedded one,
// announced on stderr in one line. Env.Close stops it. A NATS_URL that
// nats.go could not parse is refused with an error wrapping ErrUsage and
// ErrBadURL that shows no credential (see CheckURLs). The Env's Stderr is
// stderr.
func FromEnvironment(scenario string, getenv func(string) string, stderr io.Writer) (*Env, error) {
	return fromSources(scenario, "", nil, getenv, stderr)
}

// fromSources makes the Env of a run: -secure's (lock not nil), or the
// one for the -context flag's context (contextName), or the environment's,
// or an embedded one, in that order (see LoadCredentials). What it does not
// use of the environment it says in one line.
func fromSources(scenario, contextName string, lock *Lockdown, getenv func(string) string, stderr io.Writer) (*Env, error) {
	ignored := ignoredVars(getenv)
	if lock != nil {
		env, err := EmbeddedSecure(scenario, *lock)
		if err != nil {
			return nil, err
		}
		env.Stderr = stderr
		fmt.Fprintf(stderr, "%s: -secure: an embedded nats-server at %s with users %s and %s, each allowed only its part (see security/locked-down.conf)\n", scenario, env.URL, Requester, Responder)
		if len(ignored) > 0 {
			fmt.Fprintf(stderr, "%s: -secure uses its own server and users; not used: %s\n", scenario, strings.Join(ignored, ", "))
		}
		return env, nil
	}
	creds, err := LoadCredentials(contextName, getenv)
	if err != nil {
		return nil, err
	}
	if contextName != "" && len(ignored) > 0 {
		fmt.Fprintf(stderr, "%s: -context %s is used whole; not used: %s\n", scenario, contextName, strings.Join(ignored, ", "))
	}
	if creds.URL != "" {
		if err := CheckURLs(creds.URL); err != nil {
			return nil, err
		}
		env := FromCredentials(scenario, creds)
		env.Stderr = stderr
		return env, nil
	}
	env, err := Embedded(scenario)
	if err != nil {
		return nil, err
	}
	env.Stderr = stderr
	fmt.Fprintf(stderr, "%s: NATS_URL is unset; using an embedded nats-server at %s (set NATS_URL=nats://host:4222 to use your own)\n", scenario, env.URL)
	return env, nil
}

// AddSecret makes every line the Env prints and every error Connect returns
// mask secret too (a password or token given other than in the URL).
func (e *Env) AddSecret(secret string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.scrub.add(secret)
}

// Scrub returns text with every credential the Env knows masked: the
// passwords and tokens in its URL, and those given to AddSecret.
func (e *Env) Scrub(text string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.scrub.scrub(text)
}

// wrapErr returns err with its text masked (see scrubber.wrap).
func (e *Env) wrapErr(err error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.scrub.wrap(err)
}

// printf writes one line on Stderr, masked.
func (e *Env) printf(format string, args ...any) {
	line := e.Scrub(fmt.Sprintf(format, args...))
	e.outMu.Lock()
	defer e.outMu.Unlock()
	fmt.Fprintln(e.Stderr, line)
}

// Logf writes one line on the Env's Stderr, with its credentials masked,
// serialized with the connection events: for what a scenario's responders
// report while they serve.
func (e *Env) Logf(format string, args ...any) { e.printf(format, args...) }

// event writes one connection event: the time, the connection's name, what
// happened.
func (e *Env) event(c *conn, format string, args ...any) {
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
	e.printf("%s %s %s: %s", now, e.Scenario, c.role, fmt.Sprintf(format, args...))
}

// Lost returns a channel that is closed when a connection of the Env is
// closed for good while the program still needs it: its server went away
// and the reconnect policy gave up, or it was closed while disconnected.
// LostErr says which connection and why. Main ends the run when it closes.
func (e *Env) Lost() <-chan struct{} { return e.lost }

// LostErr returns the error of the first connection lost for good, wrapping
// ErrConnectionLost and the connection's last error; nil until Lost is
// closed.
func (e *Env) LostErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lostErr
}

func (e *Env) loseConn(err error) {
	e.lostOnce.Do(func() {
		e.mu.Lock()
		e.lostErr = err
		e.mu.Unlock()
		close(e.lost)
	})
}

// Connect opens a connection named "<scenario> <role>" (the name servers
// show in connz and `nats server report connections`) to env's servers.
//
// It fails fast when no server answers within ConnectTimeout (the error
// wraps nats.ErrNoServers for a refused connection, or the dial's own
// error), and at once when the program is interrupted while it dials (the
// error then wraps context.Canceled; the half-open connection is closed).
// Once connected, it follows env.Reconnect, and prints its disconnect,
// reconnect and close events on env.Stderr (see Env). It carries the Env's
// credentials (LoadCredentials; under -secure, the part's user: see
// ConnectAs). A denied subscription fails a synchronous subscription's
// NextMsg with nats.ErrPermissionViolation (nats.PermissionErrOnSubscribe).
// A permissions violation that a call of package denials (Request,
// Context, PublishChecked, a readiness probe) on this connection waits for
// is theirs to return, and is not printed; other
// asynchronous errors, such as a slow consumer dropping messages or a denied
// publish nobody waits for, are printed on env.Stderr, one line each.
// Extra opts follow the defaults and may override them; disconnect,
// reconnect and closed handlers given in opts run after Env's own. An error
// handler given in opts (nats.ErrorHandler) replaces Env's printing one,
// and gets every error, the violations a request returns too (denials.Claimed tells
// which): the denial watch is chained in front of it, so denials stay
// prompt; the same holds for one set later with nc.SetErrorHandler. After
// Close, or when Close runs while it dials, the error wraps
// nats.ErrConnectionClosed and no connection is left open. No error shows a
// credential.
func (e *Env) Connect(role string, opts ...nats.Option) (*nats.Conn, error) {
	return e.ConnectAs(0, role, opts...)
}

// ErrNoPart is wrapped by Connect's error under -secure: every connection
// must say its part (ConnectAs), which decides its user.
var ErrNoPart = errors.New("under -secure a connection must say its part (Env.ConnectAs)")

// ConnectAs is Connect for a connection playing part in the request-reply.
// Under -secure (EmbeddedSecure) it connects as that part's user (see
// Lockdown), with its inbox prefix; a part the Env has no user for fails
// with an error wrapping ErrNoPart. Otherwise part changes nothing: every
// connection uses the Env's credentials.
func (e *Env) ConnectAs(part Part, role string, opts ...nats.Option) (*nats.Conn, error) {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("connect %s %s: %w", e.Scenario, role, nats.ErrConnectionClosed)
	}
	who := e.creds
	if e.ids != nil {
		id, ok := e.ids[part]
		if !ok {
			return nil, fmt.Errorf("connect %s %s: %w", e.Scenario, role, ErrNoPart)
		}
		who = id.Options()
	}
	if err := CheckURLs(e.URL); err != nil {
		return nil, fmt.Errorf("connect %s %s: %w", e.Scenario, role, err)
	}
	c := &conn{role: role, closed: make(chan struct{})}
	dialer := &abortDialer{ctx: e.ctx, connecting: true}
	all := append([]nats.Option{
		nats.Name(e.Scenario + " " + role),
		nats.Timeout(ConnectTimeout),
		nats.DrainTimeout(DrainTimeout),
		nats.MaxReconnects(e.Reconnect.Max),
		nats.ReconnectWait(e.Reconnect.Wait),
		// The first attempt dials through a dialer that an interrupt aborts;
		// host names are resolved there too, so a slow lookup is aborted.
		nats.SetCustomDialer(dialer),
		nats.SkipHostLookup(),
		// A denied subscription then fails NextMsg with
		// nats.ErrPermissionViolation instead of looking like silence.
		nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			if denials.Claimed(nc, err) {
				// Somebody waits for it (Request) and returns it.
				return
			}
			if errors.Is(err, nats.ErrDrainTimeout) {
				// Reported once: by Close for its own drains, else by the
				// close event, whose reason it is.
				return
			}
			if sub != nil {
				e.printf("%s %s: on %q: %v", e.Scenario, role, sub.Subject, err)
				return
			}
			e.printf("%s %s: %v", e.Scenario, role, err)
		}),
	}, who...)
	all = append(all, opts...)
	all = append(all, e.eventHandlers(c), denials.Option())
	nc, err := nats.Connect(e.URL, all...)
	interrupted := !dialer.connected()
	if err == nil && interrupted {
		// The interrupt came while nats.Connect finished with a connection
		// it had dialed: do not keep it.
		nc.Close()
		err = context.Cause(e.ctx)
	}
	if err != nil {
		if e.ctx.Err() != nil && !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w (%w)", context.Cause(e.ctx), err)
		}
		return nil, e.wrapErr(fmt.Errorf("connect %s %s to %s: %w", e.Scenario, role, Redact(e.URL), err))
	}
	denials.Rehook(nc)
	c.mu.Lock()
	c.nc = nc
	if c.server == "" { // unless a reconnect has already set it
		c.server = Redact(nc.ConnectedUrl())
	}
	c.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		// Close ran while we were dialing and will not drain this one.
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		nc.Close()
		return nil, fmt.Errorf("connect %s %s: %w", e.Scenario, role, nats.ErrConnectionClosed)
	}
	e.conns = append(e.conns, c)
	return nc, nil
}

// eventHandlers returns the option that installs c's disconnect, reconnect
// and closed handlers, chained before any the caller's options set.
func (e *Env) eventHandlers(c *conn) nats.Option {
	return func(o *nats.Options) error {
		userDisconnected, userReconnected, userClosed := o.DisconnectedErrCB, o.ReconnectedCB, o.ClosedCB
		o.DisconnectedErrCB = func(nc *nats.Conn, err error) {
			c.mu.Lock()
			// nats.go calls this handler on every close too, with a nil
			// error; a lost server always comes with the read error.
			report := !c.closing && err != nil
			if report {
				c.disconnected = true
			}
			server := c.server
			c.mu.Unlock()
			if report {
				e.event(c, "disconnected from %s: %v; %s", server, err, e.Reconnect)
			}
			if userDisconnected != nil {
				userDisconnected(nc, err)
			}
		}
		o.ReconnectedCB = func(nc *nats.Conn) {
			server := Redact(nc.ConnectedUrl())
			c.mu.Lock()
			c.disconnected = false
			c.server = server
			c.mu.Unlock()
			e.event(c, "reconnected to %s", server)
			if userReconnected != nil {
				userReconnected(nc)
			}
		}
		o.ClosedCB = func(nc *nats.Conn) {
			c.mu.Lock()
			closing, disconnected := c.closing, c.disconnected
			c.mu.Unlock()
			if !closing {
				reason := "closed by the program"
				if last := nc.LastError(); last != nil {
					reason = last.Error()
				}
				if disconnected {
					err := e.wrapErr(fmt.Errorf("%s %s: %w: %s", e.Scenario, c.role, ErrConnectionLost, reason))
					e.event(c, "connection closed for good: %s", reason)
					e.loseConn(err)
				} else if last := nc.LastError(); last != nil && !errors.Is(last, nats.ErrPermissionViolation) {
					// A close the program made itself, with no error (a
					// demo's member leaving), is its own to announce; one
					// with an error (a drain that timed out) is an event.
					// A permissions violation closes nothing: it stays the
					// last error after it was reported (by the check that
					// claimed it, or printed as it came), and is not said
					// again as the reason of a close.
					e.event(c, "connection closed: %s", reason)
				}
			}
			close(c.closed)
			if userClosed != nil {
				userClosed(nc)
			}
		}
		return nil
	}
}

// abortDialer dials the first connection with a context that the program's
// interrupt ends: the dial stops at once, and a connection it made is
// closed, which ends nats.go's handshake on it. Once Connect has returned,
// connected() stops all that, so the live connection is never touched, and
// later dials (reconnects) are plain ones, ended by closing the connection.
type abortDialer struct {
	ctx context.Context

	mu         sync.Mutex
	connecting bool
	stops      []func() bool
}

// Dial is nats.CustomDialer's method.
func (d *abortDialer) Dial(network, address string) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: ConnectTimeout}
	d.mu.Lock()
	connecting := d.connecting
	d.mu.Unlock()
	if !connecting {
		return dialer.Dial(network, address)
	}
	nc, err := dialer.DialContext(d.ctx, network, address)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(d.ctx, func() { _ = nc.Close() })
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.connecting {
		// Connect has already returned: this is a reconnect.
		stop()
		return nc, nil
	}
	d.stops = append(d.stops, stop)
	return nc, nil
}

// connected ends the first attempt and reports whether it was left alone:
// false when the interrupt came (and closed what had been dialed).
func (d *abortDialer) connected() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.connecting = false
	for _, stop := range d.stops {
		stop()
	}
	d.stops = nil
	return d.ctx.Err() == nil
}

// Close drains every connection Env opened, newest first (a requester
// opened after its service drains before it), then stops the embedded
// server if there is one. Draining lets handlers finish and replies go out
// before the connection closes: the NATS way to stop a service without
// failing its requests. All the drains together take at most DrainTimeout
// (5 s), measured by the clock from the start of Close: a connection whose
// drain has not finished by then is closed, and one not yet drained by then
// is closed without a drain, each an error wrapping nats.ErrDrainTimeout
// (what it had not handled is dropped).
//
// A connection that is disconnected at that moment cannot drain: nats.go
// closes it, and what it held in its reconnect buffer is lost (an error
// wrapping nats.ErrConnectionReconnecting says how many bytes; none, no
// error). It is safe to call more than once, also from several goroutines:
// only the first call drains. The error names each connection whose drain
// failed, one per line.
func (e *Env) Close() error {
	e.mu.Lock()
	conns, embedded, servers, storeDir := e.conns, e.embedded, e.net.servers, e.storeDir
	e.conns, e.embedded, e.net.servers, e.storeDir = nil, nil, nil, ""
	e.closed = true
	e.mu.Unlock()
	deadline := time.Now().Add(e.drainFor)
	var errs []error
	for i := len(conns) - 1; i >= 0; i-- {
		if err := e.drain(conns[i], deadline); err != nil {
			errs = append(errs, err)
		}
	}
	if embedded != nil {
		testserver.Shutdown(embedded)
	}
	testserver.Shutdown(servers...)
	// Only once every server has stopped writing to it.
	if storeDir != "" {
		if err := os.RemoveAll(storeDir); err != nil {
			errs = append(errs, err)
		}
	}
	return e.wrapErr(errors.Join(errs...))
}

// drain drains c and waits until it is closed or deadline passes; then it
// closes c. The error says what was lost, if anything.
func (e *Env) drain(c *conn, deadline time.Time) error {
	name := c.nc.Opts.Name
	left := time.Until(deadline)
	if c.nc.IsClosed() {
		// Closed already, by the program or for good: not Close's doing,
		// so its closed handler must see it as it was. Wait (within the
		// time left) for that handler, which nats.go runs on its own
		// goroutine: once Close returns, a connection lost for good has
		// printed its event and is in LostErr.
		waitClosed(c, left)
		return nil
	}
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	if left <= 0 {
		if c.nc.IsClosed() {
			return nil
		}
		c.nc.Close()
		return fmt.Errorf("%s: closed without a drain, the time for draining was used up: %w", name, nats.ErrDrainTimeout)
	}
	buffered, _ := c.nc.Buffered()
	err := c.nc.Drain()
	switch {
	case errors.Is(err, nats.ErrConnectionReconnecting):
		// nats.go has closed it: a drain needs a server.
		if buffered > 0 {
			return fmt.Errorf("%s: closed while disconnected, %d bytes never sent: %w", name, buffered, nats.ErrConnectionReconnecting)
		}
		return nil
	case errors.Is(err, nats.ErrConnectionClosed):
		// Closed by itself just now, or by the program.
		waitClosed(c, left)
		return nil
	case err != nil:
		c.nc.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	timer := time.NewTimer(left)
	defer timer.Stop()
	select {
	case <-c.closed:
		// nats.go closes a connection whose own drain timeout ran out, and
		// leaves the reason as its last error: that drain lost messages.
		if errors.Is(c.nc.LastError(), nats.ErrDrainTimeout) {
			return fmt.Errorf("%s: %w", name, nats.ErrDrainTimeout)
		}
		return nil
	case <-timer.C:
		c.nc.Close()
		return fmt.Errorf("%s: %w", name, nats.ErrDrainTimeout)
	}
}

// waitClosed waits until c's closed handler has run, or for at most d.
func waitClosed(c *conn, d time.Duration) {
	timer := time.NewTimer(max(d, 0))
	defer timer.Stop()
	select {
	case <-c.closed:
	case <-timer.C:
	}
}

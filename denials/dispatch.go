// The denial dispatcher: one per process, chained in front of each
// connection's async error handler, handing each permissions violation to
// the call that waits for it.

package denials

import (
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
)

// Why a per-subject dispatch. nats-server answers a denied PUB or SUB with
// "-ERR 'Permissions Violation for Publish to "<subject>"'" (or
// "Subscription to"), and sends nothing else: no reply, no no-responders
// status. nats.go hands that error to the connection's asynchronous error
// handler only, with no subscription attached, so a request waiting for its
// reply would wait out its deadline. Its own request mux makes it worse:
// nats.go subscribes the mux once per connection and never again, so after
// one denied mux subscription every later request on the connection times
// out with no new error at all.
//
// So Request owns its inbox subscription (one per request), and before it
// sends anything registers the two subjects it can be denied on, the inbox
// (subscribe) and the request subject (publish), with this dispatcher. The
// connection's error handler hands each violation to whoever waits for
// that exact subject and kind on that connection; the waiter's request ends
// at once with that error. The server processes a connection's protocol in
// order, so the -ERR comes back within one round trip of the SUB or PUB.
// A violation that somebody claims is not printed by an error handler that
// asks Claimed (internal/cli's Env does): the
// program's run error says it, once. One that nobody waits for (a
// responder's denied reply, say) is printed, one line, as it comes.
//
// The dispatcher is chained in front of whatever error handler the
// connection has (see hook): Option, given after the caller's options at
// connect (internal/cli's Env.Connect does), chains it there, so a nats.ErrorHandler given there is kept, and every request,
// check and watch chains it again if the handler was replaced since
// (nc.SetErrorHandler). The handler behind it sees every error, the
// violations the dispatcher claimed too; Claimed tells it which those are.
//
// One flush is still needed, once per connection: if the inbox were denied
// and the request sent anyway, the publish could be denied too, and that
// second violation would reach the handler after the request had returned
// the first, and be printed. So the first request on a connection flushes
// after subscribing and looks for a violation on that exact inbox (new, so
// a match is its own) before it publishes; once an inbox under the prefix
// is allowed, later requests skip that round trip.
//
// The alternative, a flush after every publish and then a look at
// nc.LastError(), costs a PING/PONG per request and cannot tell two
// violations apart when several requests share the connection: LastError
// keeps only the latest.

// Violation reads a permissions violation as nats.go hands it to a
// connection's async error handler (an error wrapping
// nats.ErrPermissionViolation with nats-server's text): publish is true for
// a denied publish, false for a denied subscription (also one a config
// reload revoked); subject is the denied subject, unquoted. ok is false for
// any other error, also for a publish refused for its reply subject
// ("Publish with Reply of", see denyReply). For a pattern that owns its
// connection's error handler, as the shared scatter-gather's Mux does.
func Violation(err error) (publish bool, subject string, ok bool) {
	kind, subject, _, ok := parseViolation(err)
	if kind == denyReply {
		return false, "", false
	}
	return kind == denyPublish, subject, ok
}

// violationRe reads the kind and subject out of nats-server's permissions
// violation text. The server writes the subject with Go's %q, so a subject
// holding a quote or a control character comes escaped: the match takes
// the whole quoted string, and parseViolation unquotes it.
var violationRe = regexp.MustCompile(`(?i)permissions violation for (publish|subscription) to ("(?:[^"\\]|\\.)*")`)

// replyViolationRe reads the reply subject out of nats-server's refusal of
// a publish for its reply subject, quoted as violationRe's.
var replyViolationRe = regexp.MustCompile(`(?i)permissions violation for publish with reply of ("(?:[^"\\]|\\.)*")`)

// Kinds of denial. denyReply is a publish the server refused for its reply
// subject, whatever its subject: nats-server refuses a client's publish
// whose reply is reserved (a JetStream subject such as $JS.API.>, a service
// import's _R_.), so that a responder's reply cannot make a request on the
// requester's behalf; its key's subject is the reply subject.
const (
	denyPublish   = "publish"
	denySubscribe = "subscription"
	denyReply     = "reply"
)

type denialKey struct {
	nc      *nats.Conn
	kind    string // denyPublish, denySubscribe or denyReply
	subject string
	queue   string // a subscription's queue group, "" for none
}

// registry is the process's dispatcher: waiters by connection, kind,
// subject and queue group, and what it knows of each connection whose error
// handler feeds it. Both are bounded by what is in flight: a waiter is
// removed when its watch stops, and a closed connection when the next new
// connection is hooked (see stateLocked).
var registry = struct {
	sync.Mutex
	seq     uint64
	waiters map[denialKey]map[*waiter]bool
	hooked  map[*nats.Conn]*hookState
}{waiters: map[denialKey]map[*waiter]bool{}, hooked: map[*nats.Conn]*hookState{}}

// recentViolations is how many of a connection's latest violations the
// dispatcher remembers, with whether each was claimed: 64. A violation
// passes a chain of handlers on one goroutine (nats.go's), so it is looked
// up again within moments of its first dispatch; a request that read it as
// the connection's last error (before the handler ran) marks it claimed
// here. One pushed out before its handler ran would be dispatched anew:
// at worst a denial printed as well as returned.
const recentViolations = 64

// hookState is what the dispatcher knows of one connection.
type hookState struct {
	// inboxOK: an inbox under the connection's prefix has been allowed.
	inboxOK atomic.Bool

	// mux: the denial of nats.go's response mux on the connection, if any
	// (see Context).
	mux muxDenial

	// Guarded by the registry's lock: the latest violations, a ring.
	recent [recentViolations]dispatched
	next   int
}

// dispatched is one violation the dispatcher has seen, and its outcome.
type dispatched struct {
	err     error
	claimed bool
}

// lookup returns the outcome of the violation err (the very error value
// nats.go made for one -ERR), if it is one of the latest.
func (st *hookState) lookup(err error) (claimed, ok bool) {
	if !reflect.TypeOf(err).Comparable() {
		return false, false
	}
	for _, d := range st.recent {
		if d.err == err {
			return d.claimed, true
		}
	}
	return false, false
}

// remember records err's outcome, unless it is recorded already.
func (st *hookState) remember(err error, claimed bool) {
	if _, ok := st.lookup(err); ok || !reflect.TypeOf(err).Comparable() {
		return
	}
	st.recent[st.next] = dispatched{err: err, claimed: claimed}
	st.next = (st.next + 1) % recentViolations
}

// waiter is one watchDenials registration. Each violation the handler
// gets goes to one waiter of its key, the oldest not yet handed one for
// that key: one SUB or PUB, one -ERR, one waiter. So a violation is never
// taken by a later watch of the same subject, and each watch that sent
// something denied gets exactly its own.
type waiter struct {
	seq uint64
	fn  func(error)

	// Guarded by the registry's lock.
	keys  []denialKey        // registered under these
	got   map[denialKey]bool // handed a violation for this key
	fired bool               // fn has been called
}

// unregister removes w from all its keys. The registry's lock is held.
func (w *waiter) unregister() {
	for _, k := range w.keys {
		delete(registry.waiters[k], w)
		if len(registry.waiters[k]) == 0 {
			delete(registry.waiters, k)
		}
	}
	w.keys = nil
}

// parseViolation returns the kind, subject and queue group of a
// permissions violation.
func parseViolation(err error) (kind, subject, queue string, ok bool) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return "", "", "", false
	}
	m := violationRe.FindStringSubmatch(err.Error())
	if m == nil {
		if r := replyViolationRe.FindStringSubmatch(err.Error()); r != nil {
			if subject, err := strconv.Unquote(r[1]); err == nil {
				return denyReply, subject, "", true
			}
		}
		return "", "", "", false
	}
	kind = map[string]string{"publish": denyPublish, "subscription": denySubscribe}[strings.ToLower(m[1])]
	if kind == denySubscribe {
		if q := queueRe.FindStringSubmatch(err.Error()); q != nil {
			queue, _ = strconv.Unquote(q[1])
		}
	}
	subject, err = strconv.Unquote(m[2])
	if err != nil {
		return "", "", "", false
	}
	return kind, subject, queue, true
}

// queueRe reads the queue group out of a subscription's violation text.
var queueRe = regexp.MustCompile(`using queue ("(?:[^"\\]|\\.)*")`)

// Claimed dispatches err, as nc's error handler got it, and reports
// whether it is a permissions violation that a request, check or watch on
// nc returns (Request, PublishChecked, SubscribeChecked, Watch,
// a readiness probe): such a violation is reported by that call's error,
// so an error handler that logs need not log it too. The first call for
// one violation hands it to the oldest waiter for its subject and kind not
// yet handed one; later calls for the same violation (a chain of handlers
// passing it on) hand it to nobody else and return the same answer. Any
// other error: false. The dispatcher that Option and the request calls
// chain in front of nc's error handler calls it first; a handler behind it
// that logs (internal/cli's Env) prints what it returns false for.
func Claimed(nc *nats.Conn, err error) bool {
	kind, subject, queue, ok := parseViolation(err)
	if !ok {
		return false
	}
	registry.Lock()
	st := stateLocked(nc)
	if claimed, ok := st.lookup(err); ok {
		registry.Unlock()
		return claimed
	}
	var deliver func()
	claimed := false
	if kind == denyPublish {
		claimed, deliver = claimProbeAnswer(subject, err)
	}
	if !claimed && kind == denySubscribe && subject == respMux(nc) {
		// nats.go's response mux: every request on nc shares it, so its
		// denial is every waiting Context's, and is kept for those to come.
		st.rememberMux(nc, subject, deniedError{err: err, hint: InboxHint})
		claimed, deliver = claimAllLocked(denialKey{nc, kind, subject, queue}, err)
	}
	if !claimed {
		claimed, deliver = claimDenialLocked(denialKey{nc, kind, subject, queue}, err)
	}
	st.remember(err, claimed)
	registry.Unlock()
	if deliver != nil {
		deliver()
	}
	return claimed
}

// claimDenialLocked picks the oldest waiter for key not yet handed a
// violation for it, and reports whether the violation is somebody's to
// report (so not to print): it was handed to a waiter, or a watch of that
// key still under way has had one already. deliver, if not nil, calls the
// waiter's fn, outside the lock. The registry's lock is held.
func claimDenialLocked(key denialKey, err error) (claimed bool, deliver func()) {
	var pick *waiter
	busy := false
	for w := range registry.waiters[key] {
		if w.got[key] {
			busy = true
			continue
		}
		if pick == nil || w.seq < pick.seq {
			pick = w
		}
	}
	if pick == nil {
		return busy, nil
	}
	pick.got[key] = true
	if pick.fired {
		return true, nil
	}
	pick.fired = true
	return true, func() { pick.fn(err) }
}

// claimAllLocked hands err to every waiter for key that has not fired, for
// a violation that is all of theirs (a denied response mux), and reports
// whether there was any. The registry's lock is held.
func claimAllLocked(key denialKey, err error) (claimed bool, deliver func()) {
	var fns []func(error)
	for w := range registry.waiters[key] {
		w.got[key] = true
		if !w.fired {
			w.fired = true
			fns = append(fns, w.fn)
		}
	}
	if len(registry.waiters[key]) == 0 {
		return false, nil
	}
	return true, func() {
		for _, fn := range fns {
			fn(err)
		}
	}
}

// claimedElsewhere records that the violation err on nc is reported by a
// call that read it as the connection's last error (nats.go sets it before
// its error handler runs): when the handler gets it, it is claimed, handed
// to nobody and not printed.
func claimedElsewhere(nc *nats.Conn, err error) {
	registry.Lock()
	defer registry.Unlock()
	stateLocked(nc).remember(err, true)
}

// stateLocked returns the dispatcher's state of nc, made on first use;
// making one forgets the connections that have closed since. So the
// dispatcher holds the connections open, and those closed since the last
// new one it saw: it sets no closed handler of its own, which would change
// what nc's handlers are (a Mux's connection has none). The registry's lock is
// held.
func stateLocked(nc *nats.Conn) *hookState {
	if st := registry.hooked[nc]; st != nil {
		return st
	}
	for c := range registry.hooked {
		if c.IsClosed() {
			delete(registry.hooked, c)
		}
	}
	st := &hookState{}
	registry.hooked[nc] = st
	return st
}

// hook makes sure nc's violations reach the dispatcher, and returns its
// state. Unless nc's error handler is the dispatcher's already, it chains
// the dispatcher in front of it (see chainDenials): on first use, and again
// after the caller replaced the handler with nc.SetErrorHandler. A handler
// replaced while a call is in flight is seen by the calls after it; the
// one in flight may then end at its deadline instead of with its denial.
func hook(nc *nats.Conn) *hookState {
	if h := nc.ErrorHandler(); !isDispatcher(h) {
		nc.SetErrorHandler(chainDenials(h))
	}
	registry.Lock()
	st := stateLocked(nc)
	registry.Unlock()
	return st
}

// Rehook makes sure nc's violations reach the dispatcher: it chains the
// denial dispatcher in front of nc's error handler again if the caller has
// replaced it (nc.SetErrorHandler) since the last call that hooked nc, and
// registers nc with the dispatcher (forgetting the connections closed
// since). Request, the checks, Watch and Context do this on each call; a
// connection made with Option is hooked from the start, and calls Rehook
// once, after connecting, to be registered. A pattern that keeps one watch
// across many calls (the tail Client's per-subject watch) calls it on each
// call, so that a handler set while its watch lives does not turn the
// denials of later calls into timeouts.
func Rehook(nc *nats.Conn) { hook(nc) }

// chainDenials returns an error handler that dispatches each error (see
// Claimed) and then passes it on to next, if any: next sees every error,
// the claimed violations too. Not inlined, so that every handler it makes
// has the same code, which isDispatcher recognises.
//
//go:noinline
func chainDenials(next nats.ErrHandler) nats.ErrHandler {
	return func(c *nats.Conn, sub *nats.Subscription, err error) {
		Claimed(c, err)
		if next != nil {
			next(c, sub, err)
		}
	}
}

// dispatcherCode is the code of every handler chainDenials makes.
var dispatcherCode = reflect.ValueOf(chainDenials(nil)).Pointer()

// isDispatcher reports whether h was made by chainDenials. A handler that
// wraps one (a caller's that calls the handler it replaced) is not: hook
// chains another dispatcher in front of it, and Claimed, called by both
// for one violation, hands it to one waiter only.
func isDispatcher(h nats.ErrHandler) bool {
	return h != nil && reflect.ValueOf(h).Pointer() == dispatcherCode
}

// Option returns the nats.Option that chains the dispatcher in front of
// the error handler the options before it set (none: the dispatcher
// alone): give it last, after any nats.ErrorHandler, to nats.Connect.
// internal/cli's Env.Connect does; every request, check and watch of this
// package does it (Rehook) for a connection made without it. The handler
// behind it still gets every error.
func Option() nats.Option {
	return func(o *nats.Options) error {
		o.AsyncErrorCB = chainDenials(o.AsyncErrorCB)
		return nil
	}
}

// watchDenials calls fn with the first violation on nc handed to it for
// any of keys (see Claimed), until stop is called; stop removes the
// registration. A caller that learnt of a violation other than through fn
// (as the connection's last error) calls claimedElsewhere with it, so that
// the handler, when it gets it, neither hands it on nor prints it.
func watchDenials(nc *nats.Conn, fn func(error), keys ...denialKey) (stop func()) {
	for i := range keys {
		keys[i].nc = nc
	}
	registry.Lock()
	registry.seq++
	w := &waiter{seq: registry.seq, fn: fn, keys: keys, got: map[denialKey]bool{}}
	for _, k := range keys {
		if registry.waiters[k] == nil {
			registry.waiters[k] = map[*waiter]bool{}
		}
		registry.waiters[k][w] = true
	}
	registry.Unlock()
	return func() {
		registry.Lock()
		defer registry.Unlock()
		w.unregister()
	}
}

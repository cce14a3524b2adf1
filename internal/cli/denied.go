// Permission denials, made prompt and clear: a request whose publish or
// inbox subscription the server denies fails within one round trip, with an
// error naming the subject, instead of waiting out its timeout.

package cli

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
// A violation that somebody claims is not printed by Env's handler: the
// program's run error says it, once. One that nobody waits for (a
// responder's denied reply, say) is printed, one line, as it comes.
//
// The dispatcher is chained in front of whatever error handler the
// connection has (see hook): Env.Connect chains it after the caller's
// options, so a nats.ErrorHandler given there is kept, and every request,
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

// denials is the process's dispatcher: waiters by connection, kind,
// subject and queue group, and what it knows of each connection whose error
// handler feeds it. Both are bounded by what is in flight: a waiter is
// removed when its watch stops, and a closed connection when the next new
// connection is hooked (see stateLocked).
var denials = struct {
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

	// Guarded by denials' lock: the latest violations, a ring.
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

	// Guarded by denials' lock.
	keys  []denialKey        // registered under these
	got   map[denialKey]bool // handed a violation for this key
	fired bool               // fn has been called
}

// unregister removes w from all its keys. denials' lock is held.
func (w *waiter) unregister() {
	for _, k := range w.keys {
		delete(denials.waiters[k], w)
		if len(denials.waiters[k]) == 0 {
			delete(denials.waiters, k)
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
// nc returns (Request, PublishChecked, SubscribeChecked, WatchDenials,
// a readiness probe): such a violation is reported by that call's error,
// so an error handler that logs need not log it too. The first call for
// one violation hands it to the oldest waiter for its subject and kind not
// yet handed one; later calls for the same violation (a chain of handlers
// passing it on) hand it to nobody else and return the same answer. Any
// other error: false. The dispatcher that Env.Connect and the request
// calls chain in front of nc's error handler calls it first; Env's own
// handler prints what it returns false for.
func Claimed(nc *nats.Conn, err error) bool {
	kind, subject, queue, ok := parseViolation(err)
	if !ok {
		return false
	}
	denials.Lock()
	st := stateLocked(nc)
	if claimed, ok := st.lookup(err); ok {
		denials.Unlock()
		return claimed
	}
	var deliver func()
	claimed := false
	if kind == denyPublish {
		claimed, deliver = claimProbeAnswer(subject, err)
	}
	if !claimed {
		claimed, deliver = claimDenialLocked(denialKey{nc, kind, subject, queue}, err)
	}
	st.remember(err, claimed)
	denials.Unlock()
	if deliver != nil {
		deliver()
	}
	return claimed
}

// claimDenialLocked picks the oldest waiter for key not yet handed a
// violation for it, and reports whether the violation is somebody's to
// report (so not to print): it was handed to a waiter, or a watch of that
// key still under way has had one already. deliver, if not nil, calls the
// waiter's fn, outside the lock. denials' lock is held.
func claimDenialLocked(key denialKey, err error) (claimed bool, deliver func()) {
	var pick *waiter
	busy := false
	for w := range denials.waiters[key] {
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

// claimedElsewhere records that the violation err on nc is reported by a
// call that read it as the connection's last error (nats.go sets it before
// its error handler runs): when the handler gets it, it is claimed, handed
// to nobody and not printed.
func claimedElsewhere(nc *nats.Conn, err error) {
	denials.Lock()
	defer denials.Unlock()
	stateLocked(nc).remember(err, true)
}

// stateLocked returns the dispatcher's state of nc, made on first use;
// making one forgets the connections that have closed since. So the
// dispatcher holds the connections open, and those closed since the last
// new one it saw: it sets no closed handler of its own, which would change
// what nc's handlers are (a Mux's connection has none). denials' lock is
// held.
func stateLocked(nc *nats.Conn) *hookState {
	if st := denials.hooked[nc]; st != nil {
		return st
	}
	for c := range denials.hooked {
		if c.IsClosed() {
			delete(denials.hooked, c)
		}
	}
	st := &hookState{}
	denials.hooked[nc] = st
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
	denials.Lock()
	st := stateLocked(nc)
	denials.Unlock()
	return st
}

// Rehook chains the denial dispatcher in front of nc's error handler
// again if the caller has replaced it (nc.SetErrorHandler) since the last
// call that hooked nc; otherwise it only reads the handler. Request, the
// checks and WatchDenials do this on each call. A pattern that keeps one
// watch across many calls (the tail Client's per-subject watch) calls it
// on each call, so that a handler set while its watch lives does not turn
// the denials of later calls into timeouts.
func Rehook(nc *nats.Conn) {
	if !isDispatcher(nc.ErrorHandler()) {
		hook(nc)
	}
}

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

// denialsOption returns the nats.Option that chains the dispatcher in
// front of the error handler the options before it set (none: the
// dispatcher alone): give it last, after any nats.ErrorHandler. Env.Connect
// does; hook (every request, check and watch) does it for a connection
// made without it.
func denialsOption() nats.Option {
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
	denials.Lock()
	denials.seq++
	w := &waiter{seq: denials.seq, fn: fn, keys: keys, got: map[denialKey]bool{}}
	for _, k := range keys {
		if denials.waiters[k] == nil {
			denials.waiters[k] = map[*waiter]bool{}
		}
		denials.waiters[k][w] = true
	}
	denials.Unlock()
	return func() {
		denials.Lock()
		defer denials.Unlock()
		w.unregister()
	}
}

// ErrDenied is wrapped, together with nats.ErrPermissionViolation, by the
// errors of Request and PublishChecked for a denied publish or
// subscription.
var ErrDenied = errors.New("denied by the server's permissions")

// deniedError is a denial: its text is the server's violation (which names
// the subject), with a hint for a denied reply inbox; errors.Is finds
// ErrDenied and nats.ErrPermissionViolation.
type deniedError struct {
	err  error
	hint string
}

func (e deniedError) Error() string   { return e.err.Error() + e.hint }
func (e deniedError) Unwrap() []error { return []error{ErrDenied, e.err} }

// denied wraps the violation err of a request whose inbox is inbox.
func denied(err error, inbox string) error {
	var hint string
	if kind, subject, _, ok := parseViolation(err); ok && kind == denySubscribe && subject == inbox {
		hint = inboxHint
	}
	return deniedError{err: err, hint: hint}
}

// inboxHint ends the error of a denied reply inbox: the usual cause is a
// requester connected without the inbox prefix its user is given.
const inboxHint = " (a reply inbox: connect with an inbox prefix this user may subscribe to: NATS_INBOX_PREFIX, or a nats context's inbox_prefix)"

// underInbox reports whether subject is one of nc's inboxes: under its
// inbox prefix (nats.CustomInboxPrefix), or nats.go's "_INBOX".
func underInbox(nc *nats.Conn, subject string) bool {
	prefix := nc.Opts.InboxPrefix
	if prefix == "" {
		prefix = "_INBOX"
	}
	return strings.HasPrefix(subject, prefix+".")
}

// Request sends msg as a request on nc and returns the first reply, waiting
// until ctx ends; it is nats.go's RequestWithContext with its own inbox, so
// that a permission denial ends it within one round trip (see the comment
// on the dispatcher above). The inbox is nc.NewInbox(), which honours
// nats.CustomInboxPrefix; the subscription is made for this request,
// limited to two messages (replyInboxMax) and removed on return, on the
// server too, however the request ends: one SUB and one UNSUB per request
// more than nats.go's shared mux sends, at no measurable cost on one
// server (BenchmarkRequest: about 80-120 µs per round trip either way,
// with -race off, on a shared 2-core machine). The first request on a
// connection also pays one flush (see below). Only the first reply counts.
//
// A no-responders status (503) comes back as nats.ErrNoResponders, as from
// nats.go's Request: the server sends it because the inbox subscription
// reached it before the publish. A close of nc during the wait ends it at
// once with nats.ErrConnectionClosed (unless a reply came first).
//
// Errors:
//   - nats.ErrPermissionViolation and ErrDenied: the server denied the
//     publish to msg.Subject or the subscription to the inbox, or refused
//     the inbox as a reply subject (a reserved prefix); the text is the
//     server's, which names the subject;
//   - nats.ErrNoResponders; ctx's error (context.DeadlineExceeded,
//     context.Canceled); nats.ErrConnectionClosed, for a connection closed
//     before or during the wait; nats.go's errors for a bad subject, a
//     payload over the server's maximum.
func Request(ctx context.Context, nc *nats.Conn, msg *nats.Msg) (*nats.Msg, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	state := hook(nc)
	inbox := nc.NewInbox()
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := watchDenials(nc, func(err error) {
		cancel(denied(err, inbox))
	}, denialKey{kind: denyPublish, subject: msg.Subject}, denialKey{kind: denySubscribe, subject: inbox},
		denialKey{kind: denyReply, subject: inbox})
	defer stop()
	closed, unwatch := closeSignal(nc)
	defer unwatch()

	// A channel subscription: nats.go's synchronous one (SubscribeSync and
	// NextMsg) costs about 1.2 ms more per request here (BenchmarkRequest).
	// It takes two messages (see replyInboxMax), and the channel holds
	// both, so that a second reply is never a slow consumer.
	replies := make(chan *nats.Msg, replyInboxMax)
	sub, err := nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, fmt.Errorf("subscribe %q: %w", inbox, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.AutoUnsubscribe(replyInboxMax); err != nil {
		return nil, fmt.Errorf("subscribe %q: %w", inbox, err)
	}
	// The first request on a connection makes sure its inbox is allowed
	// before it publishes: a flush, then a look for a violation on that
	// exact inbox. Were the inbox denied and the request sent anyway, the
	// server might deny the publish too, and that second violation would
	// reach the error handler after the request had already returned the
	// first: printed, a double report. Once an inbox under the connection's
	// prefix has been allowed, the others are (the permission is the
	// prefix), and later requests skip the extra round trip. While the
	// connection is down, or if the flush fails, the check waits for a
	// later request.
	if !state.inboxOK.Load() && nc.Status() == nats.CONNECTED {
		fctx, fcancel := wctx, context.CancelFunc(func() {})
		if _, ok := wctx.Deadline(); !ok {
			fctx, fcancel = context.WithTimeout(wctx, nc.Opts.Timeout)
		}
		ferr := nc.FlushWithContext(fctx)
		fcancel()
		if cause := context.Cause(wctx); errors.Is(cause, ErrDenied) {
			return nil, cause
		}
		// The violation was read before the PONG, but nats.go hands it to
		// the error handler on another goroutine: it is also the
		// connection's last error by now. The inbox is new, so a match on
		// it is this request's.
		if last := nc.LastError(); last != nil {
			if kind, subject, _, ok := parseViolation(last); ok && kind == denySubscribe && subject == inbox {
				claimedElsewhere(nc, last)
				return nil, denied(last, inbox)
			}
		}
		if ferr == nil {
			state.inboxOK.Store(true)
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	req := *msg
	req.Reply = inbox
	req.Sub = nil
	if err := nc.PublishMsg(&req); err != nil {
		return nil, err
	}
	select {
	case m := <-replies:
		return reply(m)
	case <-closed:
		// nats.go sends no subscription status when the connection
		// closes: the connection's own status says it.
		select {
		case m := <-replies:
			return reply(m)
		default:
		}
		return nil, nats.ErrConnectionClosed
	case <-wctx.Done():
		if cause := context.Cause(wctx); errors.Is(cause, ErrDenied) {
			return nil, cause
		}
		return nil, ctx.Err()
	}
}

// replyInboxMax is the AutoUnsubscribe count of Request's inbox: 2, not
// 1. nats-server counts only delivered replies against it, not its own
// no-responders status, while nats.go counts every message and, at the
// count, drops the subscription without sending UNSUB: with 1, each "no
// responders" would leave the inbox's interest on the server for good.
// With 2, the status (or a first reply) leaves the subscription in place,
// and Request's own Unsubscribe removes it on both sides; if two replies
// come first, both sides drop it at that count. The server still sends at
// most two replies of many responders.
const replyInboxMax = 2

// closeSignal returns a channel that receives when nc closes (at once if
// it is closed already), and the function that stops it. nats.go sends a
// subscription no status when its connection closes, so a wait for a
// reply watches the connection itself.
func closeSignal(nc *nats.Conn) (closed <-chan nats.Status, stop func()) {
	ch := nc.StatusChanged(nats.CLOSED)
	if nc.IsClosed() {
		select {
		case ch <- nats.CLOSED:
		default: // the close event is there already
		}
	}
	return ch, func() { nc.RemoveStatusListener(ch) }
}

// reply returns m, or nats.ErrNoResponders for the server's no-responders
// status: no payload and the header "Status: 503", as nats.go reads it.
func reply(m *nats.Msg) (*nats.Msg, error) {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return nil, nats.ErrNoResponders
	}
	return m, nil
}

// PublishChecked publishes msg on nc and waits for the server to have read
// it (a flush, bounded by ctx): it returns an error wrapping
// nats.ErrPermissionViolation and ErrDenied, naming the subject, when the
// server denied the publish, or naming msg.Reply when it refused the
// publish for that reply subject (a reserved one, such as $JS.API.>), and
// nil when it took it. A responder that must
// know its reply was allowed (allow_responses limits how many and how late)
// pays one round trip for that. Without a deadline in ctx, the flush waits
// at most the connection's timeout (nats.Timeout; ConnectTimeout, 2 s, on an
// Env's connections). Other errors are nats.go's (a closed connection,
// ctx's error or nats.ErrTimeout for a flush that did not come back).
func PublishChecked(ctx context.Context, nc *nats.Conn, msg *nats.Msg) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, nc.Opts.Timeout)
		defer cancel()
	}
	hook(nc)
	var mu sync.Mutex
	var denied error
	stop := watchDenials(nc, func(err error) {
		mu.Lock()
		denied = err
		mu.Unlock()
	}, publishKeys(msg)...)
	defer stop()
	before := nc.LastError()
	if err := nc.PublishMsg(msg); err != nil {
		return err
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("publish %q: flush: %w", msg.Subject, err)
	}
	// The -ERR came before the PONG, but nats.go hands it to the error
	// handler on another goroutine: the violation is also in the
	// connection's last error, set before the PONG was read.
	mu.Lock()
	err := denied
	mu.Unlock()
	if err == nil {
		if kind, subject, _, last := violationSince(nc, before); last != nil && slices.Contains(publishKeys(msg), denialKey{kind: kind, subject: subject}) {
			err = last
			claimedElsewhere(nc, last)
		}
	}
	if err != nil {
		return deniedError{err: err}
	}
	return nil
}

// publishKeys returns the denials a publish of msg can meet, without a
// connection: its subject, and its reply subject if it has one.
func publishKeys(msg *nats.Msg) []denialKey {
	keys := []denialKey{{kind: denyPublish, subject: msg.Subject}}
	if msg.Reply != "" {
		keys = append(keys, denialKey{kind: denyReply, subject: msg.Reply})
	}
	return keys
}

// violationSince returns the kind, subject and queue group of nc's last
// error, and that error, if it is a permissions violation nats.go recorded
// after before (the last error read before the call's publish or
// subscribe); else a nil error.
// The last error is sticky: a violation from an earlier call, since
// allowed by a reload of the server's permissions, must not be taken as
// this call's. nats.go makes a new error value for each -ERR, so a new
// violation of the same subject is told apart from the old one.
func violationSince(nc *nats.Conn, before error) (kind, subject, queue string, last error) {
	last = nc.LastError()
	if last == nil || (before != nil && reflect.TypeOf(last).Comparable() && reflect.TypeOf(before).Comparable() && last == before) {
		return "", "", "", nil
	}
	kind, subject, queue, ok := parseViolation(last)
	if !ok {
		return "", "", "", nil
	}
	return kind, subject, queue, last
}

// SubscribeChecked makes a subscription with subscribe (any of nats.go's
// subscribe calls, for subject in queue group queue, "" for none), waits
// until the server has read it (a flush), and returns it if the server took
// it. If the server's permissions denied it, it unsubscribes and returns an
// error wrapping nats.ErrPermissionViolation and ErrDenied, naming the
// subject (and queue group), and, for one of nc's reply inboxes, saying
// how to set the inbox prefix. A responder subscribes this way, so that a
// service its user may not serve fails at its start instead of serving
// nothing; a gather with one long-lived inbox subscription (a mux) too.
//
// It watches for the violation before subscribing: the -ERR can come back
// before a check made afterwards would be registered, and Env's handler
// would print it, a second report. Without a deadline in ctx, the flush
// waits at most the connection's timeout (nats.Timeout) and fails with
// nats.ErrTimeout; with one, with ctx's error. Errors of subscribe are
// returned as they are.
func SubscribeChecked(ctx context.Context, nc *nats.Conn, subject, queue string, subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error) {
	hook(nc)
	var mu sync.Mutex
	var got error
	key := denialKey{nc: nc, kind: denySubscribe, subject: subject, queue: queue}
	stop := watchDenials(nc, func(err error) {
		mu.Lock()
		got = err
		mu.Unlock()
	}, key)
	defer stop()
	before := nc.LastError()
	sub, err := subscribe()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); ok {
		err = nc.FlushWithContext(ctx)
	} else {
		err = nc.FlushTimeout(nc.Opts.Timeout)
	}
	if err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %q: flush: %w", subject, err)
	}
	mu.Lock()
	err = got
	mu.Unlock()
	if err == nil {
		// Read before the PONG, maybe not yet handed to the handler.
		if kind, subj, q, last := violationSince(nc, before); last != nil && kind == denySubscribe && subj == subject && q == queue {
			err = last
			claimedElsewhere(nc, last)
		}
	}
	if err != nil {
		_ = sub.Unsubscribe()
		var hint string
		if underInbox(nc, subject) {
			hint = inboxHint
		}
		return nil, deniedError{err: err, hint: hint}
	}
	return sub, nil
}

// WatchDenials calls onDenied, once, with the first permissions violation
// the server reports on nc for a publish to one of publish or a
// subscription to one of subscribe (exact subjects, as given to Publish and
// Subscribe; a queue subscription's violation names its group, so make
// that one with SubscribeChecked), wrapped so that errors.Is finds nats.ErrPermissionViolation
// and ErrDenied, until stop is called. It is how a pattern with its own
// inbox subscription and publishes (a scatter-gather, a queue-group load)
// ends within one round trip of a denial: register before subscribing and
// publishing, and end the wait when onDenied is called; see Request for the
// reasoning. A violation a watch receives is not printed by an Env
// connection's error handler, so the pattern's error reports it once. If
// both a subscription and a publish of one watch can be denied, check the
// subscription first (SubscribeChecked): the second violation could come
// after stop and be printed. Register before subscribing or publishing:
// the violation can come back at once.
func WatchDenials(nc *nats.Conn, onDenied func(error), publish, subscribe []string) (stop func()) {
	hook(nc)
	var keys []denialKey
	for _, s := range publish {
		keys = append(keys, denialKey{kind: denyPublish, subject: s})
	}
	for _, s := range subscribe {
		keys = append(keys, denialKey{kind: denySubscribe, subject: s})
	}
	return watchDenials(nc, func(err error) { onDenied(deniedError{err: err}) }, keys...)
}

// A responder whose replies the server's permissions deny (a user given no
// allow_responses, and no publish to the requester's inboxes) answers each
// readiness probe in vain: the prober hears nothing, and would wait out its
// bound while every denied answer was printed, one line per probe. The
// denial goes to the responder's connection, not to the prober's, so a
// probe registers its inbox here (watchProbeAnswers), and a denied publish
// to "<inbox>.<n>" on any hooked connection of the process is handed to
// the probe that owns the inbox: in a program that runs both halves, the
// first denied answer ends the wait within one round trip. A run whose
// responders are elsewhere cannot see it: there the responder's process
// prints its denials, and the prober waits out its bound.

// probeAnswerLinger is how long a probe inbox's registration stays after
// its wait is over, so that denied answers still on their way are not
// printed (the wait's error, or the run's, has said it already): 1 minute,
// DefaultReplyWindow. At most probeAnswerKept registrations linger: past
// that, the oldest goes first (a late denied answer to it is printed).
const probeAnswerLinger = DefaultReplyWindow

// probeAnswerKept bounds the probe inboxes whose wait is over that are
// still registered (see probeAnswerLinger): 1,024, a few dozen bytes each.
// Those still waiting are in flight, and are never dropped.
const probeAnswerKept = 1024

var probeAnswers = struct {
	sync.Mutex
	watch map[string]*probeWatch // by probe inbox
	ended []string               // inboxes whose wait is over, oldest first
}{watch: map[string]*probeWatch{}}

type probeWatch struct {
	fn    func(error) // nil once the wait is over
	ended time.Time
}

// dropEndedProbes drops the registrations that have lingered for
// probeAnswerLinger, and the oldest past probeAnswerKept. probeAnswers'
// lock is held.
func dropEndedProbes(now time.Time) {
	drop := 0
	for _, inbox := range probeAnswers.ended {
		w := probeAnswers.watch[inbox]
		if w != nil && len(probeAnswers.ended)-drop <= probeAnswerKept && now.Sub(w.ended) <= probeAnswerLinger {
			break
		}
		delete(probeAnswers.watch, inbox)
		drop++
	}
	probeAnswers.ended = slices.Delete(probeAnswers.ended, 0, drop)
}

// watchProbeAnswers calls fn with the first permissions violation, on any
// hooked connection, for a publish to inbox+".<n>": a responder's denied
// answer to one of the probes whose reply subjects are under inbox. After
// stop, violations for inbox are still claimed (not printed) for
// probeAnswerLinger (see probeAnswerKept), and fn is not called.
func watchProbeAnswers(inbox string, fn func(error)) (stop func()) {
	probeAnswers.Lock()
	dropEndedProbes(time.Now())
	w := &probeWatch{fn: fn}
	probeAnswers.watch[inbox] = w
	probeAnswers.Unlock()
	return func() {
		probeAnswers.Lock()
		defer probeAnswers.Unlock()
		now := time.Now()
		w.fn, w.ended = nil, now
		probeAnswers.ended = append(probeAnswers.ended, inbox)
		dropEndedProbes(now)
	}
}

// claimProbeAnswer reports whether a denied publish to subject was an
// answer to a probe (whose inbox it is under); deliver, if not nil, hands
// the denial to the probe's wait, once.
func claimProbeAnswer(subject string, err error) (claimed bool, deliver func()) {
	i := strings.LastIndexByte(subject, '.')
	if i < 0 {
		return false, nil
	}
	probeAnswers.Lock()
	defer probeAnswers.Unlock()
	w := probeAnswers.watch[subject[:i]]
	if w == nil {
		return false, nil
	}
	fn := w.fn
	if fn == nil {
		return true, nil
	}
	w.fn = nil // once; stop marks it ended
	return true, func() {
		fn(deniedError{err: err, hint: " (a responder's answer to a readiness probe: its user may not publish replies; give it allow_responses)"})
	}
}

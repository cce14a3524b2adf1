// Readiness probes: how a requester learns, with what a client can see,
// that the responders' interest has reached its own server before it sends
// its first real request.

package probe

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// On one server, a responder's Flush confirms that the server has its
// subscription. On a cluster, a leaf node or a supercluster, the other
// servers learn of it asynchronously (route, leaf and gateway interest
// propagation), and a request made there before then gets no responders,
// or, for a plain subscriber, is not delivered to it. A client cannot read
// another server's interest; it can send a request and see who answers. A
// probe is such a request: sent on the responders' own subject, so it goes
// where a real request would, marked with Header so that responders
// answer it at once with their name and do not count it as work.

// Header is the header that marks a readiness probe. Its value is the
// probe's number; a responder answers with Answer (or Handler).
const Header = "Reqreply-Probe"

// ResponderHeader is the header in which a probe's answer names its
// responder, besides the payload: "Responder", the header a gather reads
// into Reply.Responder and matches against Expect (gather.ResponderHeader),
// so that every reply of the suite's responder helpers names its sender
// the same way.
const ResponderHeader = "Responder"

// StepMax bounds the pause between two probes that saw nothing new:
// the pause starts at 1 ms (probeFirstStep) and doubles up to 50 ms.
const StepMax = 50 * time.Millisecond

// probeFirstStep is the first pause after a probe: 1 ms. A variable for
// the tests, which shorten it to make every answer come after its pause
// (as on a loaded machine) without waiting for a load.
var probeFirstStep = time.Millisecond

// NoRespondersFor is how long Await keeps probing while
// every answer is no responders before it concludes that nobody serves the
// subject: 500 ms (or the wait's timeout, if shorter). Interest crosses a
// route, a leaf connection or a gateway within milliseconds on a healthy
// system, so this keeps a requester that nobody serves failing fast.
const NoRespondersFor = 500 * time.Millisecond

// Is reports whether m is a readiness probe.
func Is(m *nats.Msg) bool { return m.Header != nil && m.Header.Get(Header) != "" }

// Answer answers m with name as the payload (and in ResponderHeader) if m
// is a readiness probe,
// and reports whether it was one: a responder's handler calls it first and
// returns when it is true, so probes are neither worked on nor counted. A
// failed reply (the connection closing) is not reported: the prober probes
// again.
func Answer(m *nats.Msg, name string) bool {
	if !Is(m) {
		return false
	}
	if m.Reply != "" {
		// A probe has a header, so the server takes them.
		answer := &nats.Msg{Data: []byte(name), Header: nats.Header{ResponderHeader: []string{name}}}
		_ = m.RespondMsg(answer) // a lost answer is probed again
	}
	return true
}

// Want says which responders' answers end the wait.
type Want struct {
	names   []string
	all     bool
	settled bool
}

// Settled returns w that, once met, also waits until every probe sent has
// been answered (or got no responders), within the same bound: for
// responders that count probes as work (a nats.go/micro endpoint counts
// every request in its stats), so that counts reset after the wait are not
// raised by a probe still on its way. A probe lost on the way (routed to a
// server whose responder just left) makes it wait out the bound; the wait
// still succeeds.
func (w Want) Settled() Want {
	w.settled = true
	return w
}

// AnyResponder is satisfied by any answer: someone serves the subject and
// can be reached from the prober's server (a single responder, or any
// member of a queue group).
func AnyResponder() Want { return Want{} }

// AllOf is satisfied once each of names has answered: every responder's
// interest has reached the prober's server. A queue group answers each
// probe with one member picked at random, so this takes a few probes
// (about K·ln K for K members); do not ask it of members that the server
// will never pick from where the prober is (a leaf node's or another
// cluster's members while a nearer one exists).
func AllOf(names ...string) Want { return Want{names: names, all: true} }

// AnyOf is satisfied by an answer from any of names.
func AnyOf(names ...string) Want { return Want{names: names} }

// met reports whether seen satisfies w.
func (w Want) met(seen map[string]bool) bool {
	if len(w.names) == 0 {
		return len(seen) > 0
	}
	for _, n := range w.names {
		if seen[n] && !w.all {
			return true
		}
		if !seen[n] && w.all {
			return false
		}
	}
	return w.all
}

// missing lists the names w still waits for.
func (w Want) missing(seen map[string]bool) []string {
	var out []string
	for _, n := range w.names {
		if !seen[n] {
			out = append(out, n)
		}
	}
	return out
}

// Probed is what a wait for interest saw.
type Probed struct {
	// Waited is the time from the first probe to the answer that ended the
	// wait (or to the end of the wait), by the clock.
	Waited time.Duration
	// Probes is how many probes were sent; 1 when the interest was there
	// at once.
	Probes int
	// Seen lists the names that answered, in order of first answer.
	Seen []string
	// Refused is how many probes got no responders: nobody's interest was
	// visible yet.
	Refused int
	// Unanswered is how many probes got no answer at all within their
	// pause: the interest was not there yet, or the answer was slow.
	Unanswered int
	// Skipped is set when the server has no header support, which probes
	// need: nothing was sent and nothing is known.
	Skipped bool
	// leaving is set by AwaitNone, whose wait ends with a probe
	// that got no responders.
	leaving bool
	// endedBy is the number of the probe whose answer ended the wait (1 for
	// the first), 0 when none did.
	endedBy int
	// lost counts the probes sent before endedBy that had got neither an
	// answer nor a no-responders status when the wait ended: routed to
	// where nobody took them (a server whose responder had left, or whose
	// interest was not there yet). An answer that merely came after its
	// pause is not lost.
	lost int
}

// Delayed reports whether the wait was not over at once. After
// Await: a probe got no responders, or one sent before the
// answer that ended the wait got no answer at all (probes answered by a
// member already seen, as AllOf needs with a queue group, are no delay).
// After AwaitNone: the no-responders status that ended the wait
// was not the first probe's (someone still answered it, or it went where
// nobody took it). An answer that came after its pause, as on a loaded
// machine, is no delay either way: Unanswered counts those too, so it
// does not decide.
func (p Probed) Delayed() bool {
	if p.leaving {
		return p.endedBy != 1
	}
	return p.Refused > 0 || p.lost > 0
}

// String says what the probes saw, for a program's output (Waited is
// for the caller to print).
func (p Probed) String() string {
	if p.Skipped {
		return "no readiness probe (the server does not support headers)"
	}
	who := "nobody"
	if len(p.Seen) > 0 {
		who = strings.Join(p.Seen, ", ")
	}
	return fmt.Sprintf("%d probes (%d got no responders, %d no answer within their pause), answered by %s",
		p.Probes, p.Refused, p.Unanswered, who)
}

// Await probes subject from nc until want is met or timeout
// passes (by the clock), and returns what it saw. Each probe is a request
// marked with Header and answered by Answer; answers to earlier
// probes count too, since interest, once visible, stays until its
// responder leaves. A probe whose first answer brings a new name (a queue
// group answers each probe once) is followed by the next one at once;
// plain subscribers all answer every probe, so the further answers to one
// probe never call for another; otherwise the pause doubles from 1 ms to
// StepMax, and a no-responders status (nobody's interest visible yet) waits the pause
// out too.
//
// Errors: nil once want is met; an error wrapping nats.ErrNoResponders when
// nobody has answered and probes have got no responders for
// NoRespondersFor (nobody serves the subject: a requester fails fast),
// or the timeout passed and the last answers were no-responders statuses;
// nats.ErrTimeout when it passed otherwise (the names still missing are in
// the message); ctx's error when it ends first; nats.ErrConnectionClosed
// when nc closes during the wait; nats.go's subscribe or publish error.
// With Checks installed (UseChecks): an error wrapping
// nats.ErrPermissionViolation, naming the subject, within one round trip,
// when the server's permissions deny the probes' inbox subscription or
// their publish (the inbox is checked with Checks.SubscribeChecked, the
// first probe with Checks.PublishChecked: one flush each per wait); the
// same, naming the reply subject, when a responder on another connection
// of this process has its answer to a probe denied (its user may not
// publish replies: see Checks.WatchAnswers), within one round trip of that
// answer. Without them, a denial leaves the probes unanswered until the
// timeout. A server without header support cannot carry a probe: then
// nothing is sent and Probed.Skipped is set, with a nil error.
func Await(ctx context.Context, nc *nats.Conn, subject string, want Want, timeout time.Duration) (Probed, error) {
	return probe(ctx, nc, subject, timeout, want.settled, true, func(seen map[string]bool, _ bool) bool { return want.met(seen) },
		func(seen map[string]bool, noResponders bool) error {
			if noResponders && len(seen) == 0 {
				return fmt.Errorf("probe %q: nobody's interest reached %s: %w", subject, serverName(nc), nats.ErrNoResponders)
			}
			return fmt.Errorf("probe %q: still waiting for %v: %w", subject, want.missing(seen), nats.ErrTimeout)
		})
}

// AwaitNone probes subject from nc until the server answers a
// probe with no responders, or timeout passes: after every responder has
// left, that is when their interest is gone from nc's server too, so a
// request gets no responders at once instead of being routed to a server
// whose responder has gone. A probe answered by someone, or not answered
// (routed to where a responder just left), is followed by another after a
// pause that doubles from 1 ms to StepMax. Errors: an error wrapping
// nats.ErrTimeout when it did not happen in time; ctx's; a permissions
// denial as for Await; nats.go's. A server without header support:
// Probed.Skipped, nil.
func AwaitNone(ctx context.Context, nc *nats.Conn, subject string, timeout time.Duration) (Probed, error) {
	p, err := probe(ctx, nc, subject, timeout, false, false, func(_ map[string]bool, noResponders bool) bool { return noResponders },
		func(seen map[string]bool, _ bool) error {
			return fmt.Errorf("probe %q: interest still visible from %s (answered by %d responders): %w", subject, serverName(nc), len(seen), nats.ErrTimeout)
		})
	p.leaving = true
	return p, err
}

// probe is the loop of Await and AwaitNone: done says
// when the answers so far (and whether the last answer was a no-responders
// status) end the wait; fail makes the error when the timeout passes; with
// settle, a wait that is done goes on until every probe is accounted for
// (see Want.Settled); with failFast, probes that have got nothing but no
// responders for NoRespondersFor end the wait with fail.
func probe(ctx context.Context, nc *nats.Conn, subject string, timeout time.Duration, settle, failFast bool,
	done func(seen map[string]bool, noResponders bool) bool, fail func(seen map[string]bool, noResponders bool) error) (Probed, error) {
	var p Probed
	if !nc.HeadersSupported() {
		p.Skipped = true
		return p, nil
	}
	// The probes' inbox, checked (a flush) so that an inbox the server's
	// permissions deny fails the wait at once, naming the subject, instead
	// of leaving every probe unanswered until the timeout.
	inbox := nc.NewInbox()
	start := time.Now()
	deadline := start.Add(timeout)
	sctx, cancel := context.WithDeadline(ctx, deadline)
	// A channel subscription, not a synchronous one: nats.go turns a
	// no-responders status on a synchronous subscription into an error and
	// drops the message, and with it the subject that says which probe it
	// answers (see Probed.Delayed). The buffer holds more answers than the
	// loop sends probes between two reads; nats.go drops what overflows (a
	// slow consumer), which only costs another probe.
	answers := make(chan *nats.Msg, 256)
	checks := current()
	subscribe := func() (*nats.Subscription, error) { return nc.ChanSubscribe(inbox+".*", answers) }
	var sub *nats.Subscription
	var err error
	if checks != nil {
		sub, err = checks.SubscribeChecked(sctx, nc, inbox+".*", "", subscribe)
	} else {
		sub, err = subscribe()
	}
	cancel()
	if err != nil {
		// A denied inbox has the checks' inbox-prefix hint.
		return p, fmt.Errorf("probe %q: inbox: %w", subject, err)
	}
	defer func() { _ = sub.Unsubscribe() }() // answers after this are not needed
	// nats.go sends a subscription no status when its connection closes:
	// the wait watches the connection itself.
	closed := nc.StatusChanged(nats.CLOSED)
	defer nc.RemoveStatusListener(closed)
	if nc.IsClosed() {
		select {
		case closed <- nats.CLOSED:
		default: // the close event is there already
		}
	}
	// A responder of this process whose answers the server denies ends the
	// wait at once with that denial (see Checks.WatchAnswers).
	deniedAnswer := make(chan error, 1)
	if checks != nil {
		stopAnswers := checks.WatchAnswers(inbox, func(err error) { deniedAnswer <- err })
		defer stopAnswers()
	}
	next := func(wait time.Duration) (*nats.Msg, error) {
		return nextAnswer(ctx, answers, closed, deniedAnswer, wait)
	}
	// number returns the probe a message answers, from its subject.
	number := func(m *nats.Msg) int {
		n, _ := strconv.Atoi(strings.TrimPrefix(m.Subject, inbox+"."))
		return n
	}
	seen := map[string]bool{}
	noResponders := false
	// Probes accounted for: those answered (by number), and those that got
	// no responders, which nobody answers.
	answered := map[string]bool{}
	refused := 0
	accounted := func() bool { return len(answered)+refused >= p.Probes }
	// Probes that got an answer or a no-responders status, by number.
	heardFrom := map[int]bool{}
	end := func(n int) {
		p.Waited = time.Since(start)
		p.endedBy = n
		for k := 1; k < n; k++ {
			if !heardFrom[k] {
				p.lost++
			}
		}
	}
	step := probeFirstStep
	for {
		p.Probes++
		msg := &nats.Msg{Subject: subject, Reply: inbox + "." + strconv.Itoa(p.Probes), Header: nats.Header{Header: []string{strconv.Itoa(p.Probes)}}}
		// The first probe is checked (Checks.PublishChecked: one flush) so that a
		// publish the server's permissions deny fails the wait within one
		// round trip with that violation, once: the server would deny every
		// later probe too, and say so only on the error handler. Once one is
		// allowed, the rest to the same subject are.
		var err error
		if checks != nil && p.Probes == 1 && nc.Status() == nats.CONNECTED {
			pctx, cancel := context.WithDeadline(ctx, deadline)
			err = checks.PublishChecked(pctx, nc, msg)
			cancel()
			if !errors.Is(err, nats.ErrPermissionViolation) && ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrConnectionClosed)) {
				// The flush failed, not the publish (the wait's time is up,
				// or a disconnect): the probe is sent, and the loop below
				// sees the rest.
				err = nil
			}
		} else {
			err = nc.PublishMsg(msg)
		}
		if err != nil {
			p.Waited = time.Since(start)
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return p, fmt.Errorf("probe %q: %w", subject, err)
		}
		// Collect answers until this step's pause is over or the wait ends.
		news, again, heard := false, false, false
		stepEnd := time.Now().Add(step)
		for {
			wait := min(time.Until(stepEnd), time.Until(deadline))
			if wait <= 0 {
				break
			}
			m, err := next(wait)
			if err != nil {
				p.Waited = time.Since(start)
				return p, fmt.Errorf("probe %q: %w", subject, err)
			}
			if m == nil {
				break // this pause is over
			}
			heard = true
			first := !heardFrom[number(m)] // the first answer to its probe
			heardFrom[number(m)] = true
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				noResponders = true
				refused++
				p.Refused++
			} else {
				noResponders = false
				answered[m.Subject] = true
				if name := string(m.Data); !seen[name] {
					seen[name] = true
					p.Seen = append(p.Seen, name)
					news = true
					// A queue group answers a probe once: a new name
					// there calls for the next probe at once. Further
					// answers to one probe come from plain subscribers,
					// which all answer every probe: probing again for
					// each of them would cost one probe, and N answers,
					// per responder.
					again = again || first
				}
			}
			if done(seen, noResponders) {
				end(number(m))
				if settle && !accounted() {
					return p, p.settle(ctx, next, deadline, answered, &refused, accounted)
				}
				return p, nil
			}
			if again {
				break // a new name first: probe again at once
			}
		}
		if !heard {
			p.Unanswered++
		}
		nobody := failFast && len(seen) == 0 && p.Refused > 0 && time.Since(start) >= NoRespondersFor
		if time.Now().After(deadline) || nobody {
			end(0)
			return p, fail(seen, noResponders)
		}
		if news {
			step = time.Millisecond
		} else {
			step = min(2*step, StepMax)
		}
	}
}

// settle reads answers to the probes still unanswered until every probe
// is accounted for, deadline passes (not an error: a probe may have been
// lost), or ctx ends (its error).
func (p *Probed) settle(ctx context.Context, next func(time.Duration) (*nats.Msg, error), deadline time.Time, answered map[string]bool, refused *int, accounted func() bool) error {
	for !accounted() {
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil
		}
		m, err := next(wait)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("probe: %w", ctx.Err())
		case err != nil, m == nil:
			return nil // the deadline, the connection, a denied answer: the wait was met
		case len(m.Data) == 0 && m.Header.Get("Status") == "503":
			*refused++
		default:
			answered[m.Subject] = true
		}
	}
	return nil
}

// nextAnswer returns the next answer from answers, or nil when wait passes
// (by the clock); ctx's error when it ends first, nats.ErrConnectionClosed
// when closed says the connection closed (see probe), the error from
// denied when a responder's answer was denied.
func nextAnswer(ctx context.Context, answers <-chan *nats.Msg, closed <-chan nats.Status, denied <-chan error, wait time.Duration) (*nats.Msg, error) {
	// An answer already there is taken even if the pause is over.
	select {
	case m := <-answers:
		return m, nil
	default:
	}
	if wait <= 0 {
		return nil, nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case m := <-answers:
		return m, nil
	case err := <-denied:
		return nil, err
	case <-timer.C:
		return nil, nil
	case <-closed:
		select {
		case m := <-answers:
			return m, nil
		default:
		}
		return nil, nats.ErrConnectionClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// serverName names the server nc is connected to, for an error: its
// server_name, or its address when it has none (never its URL, which may
// hold credentials).
func serverName(nc *nats.Conn) string {
	if name := nc.ConnectedServerName(); name != "" {
		return name
	}
	return nc.ConnectedAddr()
}

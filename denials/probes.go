// Probe answers: a readiness probe's wait learns at once that a responder
// of this process had its answer denied.

package denials

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// A responder whose replies the server's permissions deny (a user given no
// allow_responses, and no publish to the requester's inboxes) answers each
// readiness probe in vain: the prober hears nothing, and would wait out its
// bound while every denied answer was printed, one line per probe. The
// denial goes to the responder's connection, not to the prober's, so a
// probe registers its inbox here (ProbeChecks.WatchAnswers), and a denied publish
// to "<inbox>.<n>" on any hooked connection of the process is handed to
// the probe that owns the inbox: in a program that runs both halves, the
// first denied answer ends the wait within one round trip. A run whose
// responders are elsewhere cannot see it: there the responder's process
// prints its denials, and the prober waits out its bound.

// probeAnswerLinger is how long a probe inbox's registration stays after
// its wait is over, so that denied answers still on their way are not
// printed (the wait's error, or the run's, has said it already): 1 minute,
// the default expiry of a responder's permission to reply
// (allow_responses' expires, as internal/cli's Lockdown sets it by
// default). At most probeAnswerKept registrations linger: past that, the
// oldest goes first (a late denied answer to it is printed).
const probeAnswerLinger = time.Minute

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

// ProbeChecks gives package probe's waits (probe.Await, probe.AwaitNone)
// this package's checks, so that a denial ends a wait within one round
// trip: it satisfies probe.Checks, and is installed with
// probe.UseChecks(denials.ProbeChecks{}). The probes' inbox is subscribed
// with SubscribeChecked, the first probe published with PublishChecked,
// and the probe inbox is watched (WatchAnswers) for a responder of this
// process whose answer the server denies. Its errors wrap
// nats.ErrPermissionViolation and ErrDenied.
type ProbeChecks struct{}

// SubscribeChecked is the package's SubscribeChecked.
func (ProbeChecks) SubscribeChecked(ctx context.Context, nc *nats.Conn, subject, queue string, subscribe func() (*nats.Subscription, error)) (*nats.Subscription, error) {
	return SubscribeChecked(ctx, nc, subject, queue, subscribe)
}

// PublishChecked is the package's PublishChecked.
func (ProbeChecks) PublishChecked(ctx context.Context, nc *nats.Conn, msg *nats.Msg) error {
	return PublishChecked(ctx, nc, msg)
}

// WatchAnswers calls onDenied with the first permissions violation, on
// any connection whose violations reach the dispatcher, for a publish to
// inbox+".<n>": a responder's denied answer to one of the probes whose
// reply subjects are under inbox. The error says to give the responder
// allow_responses. After stop, violations for inbox are still claimed (not
// printed) for a minute (probeAnswerLinger), and onDenied is not called.
func (ProbeChecks) WatchAnswers(inbox string, onDenied func(error)) (stop func()) {
	return watchProbeAnswers(inbox, onDenied)
}

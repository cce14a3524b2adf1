// Stop rules that know when a gather is done: Expect (a known set of
// responders) and StopWhen (a predicate over the replies so far, for quorum
// reads); and what they and AdaptiveStall (options.go, next to Stall)
// remember of a gather.

package gather

import (
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
)

// Expect names the responders the gather waits for, by the ResponderHeader
// ("Responder") each sets on its reply: the gather ends the moment the last
// of them has answered (StopExpected, a normal end), not at its deadline.
// Result.Missing then names those that had not answered when the gather
// stopped for any other reason (the deadline, no responders, a cancel...),
// and Result.Repeated those that answered more than once. A reply from a
// responder not named here, or without the header, is still a reply: it
// counts and is handed out, and ends nothing. An error reply (micro's
// Nats-Service-Error headers) is an answer. ids must be at least one, none
// empty, none twice: otherwise nats.ErrInvalidArg; on a server without
// header support no reply could name its responder, and the gather is
// refused with nats.ErrHeadersNotSupported.
//
// For a nats.go/micro service, Discover gathers the instance ids, and
// Identify makes an endpoint's replies carry its instance's id. Every
// variant honours Expect: it is applied to each reply where MaxReplies is.
// With MaxReplies too, whichever is reached first ends the gather;
// reached by the same reply, the reason is StopExpected.
func Expect(ids ...string) Option {
	return func(c *config) error {
		if len(ids) == 0 {
			return fmt.Errorf("expect: no responder named: %w", nats.ErrInvalidArg)
		}
		seen := make(map[string]struct{}, len(ids))
		for i, id := range ids {
			if id == "" {
				return fmt.Errorf("expect: responder %d has an empty id: %w", i+1, nats.ErrInvalidArg)
			}
			if _, twice := seen[id]; twice {
				return fmt.Errorf("expect: responder %q named twice: %w", id, nats.ErrInvalidArg)
			}
			seen[id] = struct{}{}
		}
		c.rule().expect = slices.Clone(ids) // the caller may reuse its slice
		return nil
	}
}

// StopWhen ends the gather after the first reply for which done, given every
// reply so far in arrival order (the latest last), returns true
// (StopCondition, a normal end). It is the rule for a quorum read: stop
// when 3 of 5 replies agree. done runs in the gather's loop, before the
// reply is handed out, so it must be quick; the slice is the gather's,
// valid only during the call: do not keep or change it. A nil done is
// nats.ErrInvalidArg. Every variant honours StopWhen. It is checked after
// Expect and before MaxReplies.
func StopWhen(done func(replies []Reply) bool) Option {
	return func(c *config) error {
		if done == nil {
			return fmt.Errorf("stop when: nil predicate: %w", nats.ErrInvalidArg)
		}
		c.rule().stopWhen = done
		return nil
	}
}

// rules are the stop rules of this file, set by their options, and what
// they remember of one gather. A config's rules are made by the first of
// those options, so a gather without them allocates nothing for them.
type rules struct {
	expect   []string           // Expect's responder ids, in order
	stopWhen func([]Reply) bool // StopWhen's predicate
	track    tracker            // what Expect, StopWhen and AdaptiveStall remember of this gather
}

// rule returns c's rules, made on first use.
func (c *config) rule() *rules {
	if c.rules == nil {
		c.rules = &rules{}
	}
	return c.rules
}

// tracker is what the rules of this file remember of one gather; the zero
// value is a gather before its first reply. It lives in the gather's
// config, which is the gather's own (resolved for each Stream or Gather).
type tracker struct {
	answers map[string]int      // replies per responder id (Expect)
	want    map[string]struct{} // Expect's ids, for a lookup per reply
	left    int                 // expected responders that have not answered
	replies []Reply             // every reply so far (StopWhen)
	last    time.Duration       // when the latest reply arrived (AdaptiveStall)
	maxGap  time.Duration       // the longest arrival gap so far (AdaptiveStall)
}

// observe records r and reports whether a rule of this file ends the
// gather with it, and which.
func (c *config) observe(r Reply) (StopReason, bool) {
	ru := c.rules
	t := &ru.track
	if c.margin > 0 {
		t.maxGap = max(t.maxGap, r.At-t.last)
		t.last = r.At
	}
	if ru.expect != nil {
		if t.answers == nil {
			t.answers = make(map[string]int, len(ru.expect))
			t.want = make(map[string]struct{}, len(ru.expect))
			for _, id := range ru.expect {
				t.want[id] = struct{}{}
			}
			t.left = len(ru.expect)
		}
		if r.Responder != "" {
			t.answers[r.Responder]++
			if _, ok := t.want[r.Responder]; ok && t.answers[r.Responder] == 1 {
				t.left--
			}
		}
		if t.left == 0 {
			return StopExpected, true
		}
	}
	if ru.stopWhen != nil {
		t.replies = append(t.replies, r)
		if ru.stopWhen(slices.Clip(t.replies)) {
			return StopCondition, true
		}
	}
	return StopNone, false
}

// gap is how long after a reply the next may come before the gather
// stalls: Stall's gap, AdaptiveStall's longest gap plus margin, or 0 (no
// stall rule).
func (c *config) gap() time.Duration {
	if c.margin > 0 {
		return c.rules.track.maxGap + c.margin
	}
	return c.stall
}

// account sets Missing and Repeated in res from what Expect saw.
func (c *config) account(res *Result) {
	if c.rules == nil || c.rules.expect == nil {
		return
	}
	for _, id := range c.rules.expect {
		if c.rules.track.answers[id] == 0 {
			res.Missing = append(res.Missing, id)
		}
	}
	for id, n := range c.rules.track.answers {
		if n > 1 {
			res.Repeated = append(res.Repeated, id)
		}
	}
	slices.Sort(res.Repeated)
}

package gather

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Fuzz targets. Their seed corpora (f.Add) run in plain `go test`; run the
// fuzzer itself briefly, e.g.
//
//	go test -run '^$' -fuzz FuzzCheckSubject -fuzztime 20s ./gather
//	go test -run '^$' -fuzz FuzzCollect -fuzztime 20s ./gather

// FuzzCheckSubject: CheckSubject never panics, refuses with
// nats.ErrBadSubject, and accepts exactly the subjects a request can be
// published to, as an independent byte-by-byte reading decides.
func FuzzCheckSubject(f *testing.F) {
	for _, s := range []string{"", "a", "a.b", "a..b", ".a", "a.", "a.*", "a.>", ">", "*", "a b", "a\tb", "a\nb",
		"a.*b", "a.b>", "gather.demo", "$SRV.PING.greeter", "_INBOX.x.y", strings.Repeat("a", MaxSubjectLen), strings.Repeat("a", MaxSubjectLen+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		err := CheckSubject(subject)
		want := validSubject(subject)
		if want {
			assert.NoError(t, err, "%q", subject)
			return
		}
		assert.ErrorIs(t, err, nats.ErrBadSubject, "%q", subject)
	})
}

// validSubject reads subject token by token, byte by byte.
func validSubject(subject string) bool {
	if len(subject) == 0 || len(subject) > MaxSubjectLen {
		return false
	}
	tokenLen := 0
	wildcard := false
	for i := 0; i <= len(subject); i++ {
		if i == len(subject) || subject[i] == '.' {
			if tokenLen == 0 || (tokenLen == 1 && wildcard) {
				return false
			}
			tokenLen, wildcard = 0, false
			continue
		}
		switch subject[i] {
		case ' ', '\t', '\r', '\n':
			return false
		case '*', '>':
			wildcard = tokenLen == 0
		}
		tokenLen++
	}
	return true
}

// fakeInbox plays a script of messages against the collect loop on a
// logical clock, so that the stop logic is checked without depending on
// scheduling: next advances the clock to the next message, or to until if
// that comes first.
type fakeInbox struct {
	now    time.Time
	events []fakeEvent
	cancel context.CancelFunc
}

type fakeEvent struct {
	at    time.Duration // from start
	kind  byte          // 0 reply, 1 empty payload, 2 no-responders status, 3 cancel
	index int
	start time.Time
}

func (f *fakeInbox) next(until time.Time) (*nats.Msg, error) {
	if len(f.events) == 0 {
		if until.After(f.now) {
			f.now = until
		}
		return nil, errWaitOver
	}
	e := f.events[0]
	at := e.start.Add(e.at)
	if at.After(until) {
		if until.After(f.now) {
			f.now = until
		}
		return nil, errWaitOver
	}
	if at.After(f.now) {
		f.now = at
	}
	f.events = f.events[1:]
	m := &nats.Msg{Subject: "_INBOX.fuzz", Data: []byte{'r', byte('0' + e.index%10)}}
	switch e.kind {
	case 1:
		m.Data = nil
	case 2:
		m.Data, m.Header = nil, nats.Header{"Status": []string{"503"}}
	case 3:
		f.cancel()
		return nil, context.Canceled
	}
	return m, nil
}

// finish counts as unread the scripted replies that had arrived by the
// stop and were not taken.
func (f *fakeInbox) finish() (dropped, unread int) {
	for _, e := range f.events {
		if e.kind != 3 && !e.start.Add(e.at).After(f.now) {
			unread++
		}
	}
	return 0, unread
}

// FuzzCollect drives the gather's stop logic (collect, shared by the inbox
// and shared variants; natsext's wrapper applies the same rules) with a
// script: up to 32 messages, each a reply, an empty payload, a
// no-responders status or a cancel, at a time from the request; MaxReplies,
// a Stall gap, the empty-payload Sentinel, a deadline, and a consumer that
// breaks after some reply. Properties:
//   - never more replies than max;
//   - never a sentinel or a status handed out;
//   - never a reply handed out at or after the deadline, and the stop never
//     later than the deadline (on the logical clock: no slack needed);
//   - the stop reason agrees with what was returned, and normal ends have
//     no error;
//   - conservation: every message that arrived by the stop is exactly one
//     of Count, Skipped or Unread.
func FuzzCollect(f *testing.F) {
	f.Add([]byte{}, uint8(0), uint8(0), false, uint16(100), uint8(0))
	f.Add([]byte{0, 10, 0, 20, 0, 30}, uint8(2), uint8(0), false, uint16(100), uint8(0))
	f.Add([]byte{0, 10, 1, 20, 0, 30}, uint8(0), uint8(0), true, uint16(100), uint8(0))
	f.Add([]byte{0, 10, 2, 20, 0, 30}, uint8(0), uint8(0), false, uint16(100), uint8(0))
	f.Add([]byte{0, 10, 0, 90, 0, 120}, uint8(0), uint8(50), false, uint16(100), uint8(0))
	f.Add([]byte{0, 10, 3, 20, 0, 30}, uint8(0), uint8(0), false, uint16(100), uint8(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0}, uint8(3), uint8(5), true, uint16(1), uint8(2))
	f.Add([]byte{0, 100, 0, 100}, uint8(0), uint8(0), false, uint16(100), uint8(1))
	f.Fuzz(func(t *testing.T, script []byte, max, stall uint8, sentinel bool, deadlineMs uint16, breakAfter uint8) {
		start := time.Unix(1_000_000, 0)
		deadline := start.Add(time.Duration(deadlineMs) * time.Millisecond)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		in := &fakeInbox{now: start, cancel: cancel}
		var at time.Duration
		for i := 0; i+1 < len(script) && len(in.events) < 32; i += 2 {
			at += time.Duration(script[i+1]) * time.Millisecond
			in.events = append(in.events, fakeEvent{at: at, kind: script[i] % 4, index: i / 2, start: start})
		}
		all := append([]fakeEvent(nil), in.events...)
		arrivedBy := func(t time.Time) int {
			n := 0
			for _, e := range all {
				if e.kind != 3 && !start.Add(e.at).After(t) {
					n++
				}
			}
			return n
		}

		c := &config{max: int(max), stall: time.Duration(stall) * time.Millisecond, now: func() time.Time { return in.now }}
		if sentinel {
			c.sentinel = EmptySentinel
		}
		var handed []Reply
		broke := false
		yield := func(r Reply) bool {
			require.Less(t, in.now, deadline, "a reply handed out at or after the deadline")
			handed = append(handed, r)
			if breakAfter > 0 && len(handed) == int(breakAfter) {
				broke = true
				return false
			}
			return true
		}
		res, err := collect(ctx, c, start, deadline, in, "fuzz", yield)

		assert.Equal(t, len(handed), res.Count)
		if c.max > 0 {
			assert.LessOrEqual(t, res.Count, c.max, "more replies than max")
		}
		for _, r := range handed {
			assert.False(t, isNoResponders(r.Msg), "a status handed out")
			assert.False(t, sentinel && EmptySentinel(r.Msg), "a sentinel handed out")
		}
		assert.LessOrEqual(t, res.Elapsed, deadline.Sub(start), "stopped after the deadline")
		assert.Equal(t, res.Reason.Normal(), err == nil, "%s: %v", res.Reason, err)

		switch res.Reason {
		case StopMax:
			assert.Equal(t, c.max, res.Count)
		case StopCaller:
			assert.True(t, broke)
		case StopSentinel:
			assert.True(t, sentinel)
			assert.Equal(t, 1, res.Skipped)
		case StopStalled:
			assert.Positive(t, c.stall)
			assert.Positive(t, res.Count)
			assert.Less(t, in.now, deadline)
		case StopDeadline:
			assert.False(t, in.now.Before(deadline))
		case StopNoResponders:
			assert.ErrorIs(t, err, nats.ErrNoResponders)
		case StopCancelled:
			assert.ErrorIs(t, err, context.Canceled)
		default:
			t.Fatalf("unexpected stop %s: %v", res.Reason, err)
		}
		if res.Reason != StopCaller {
			assert.False(t, broke)
		}
		if c.max == 0 || res.Reason != StopMax {
			assert.False(t, c.max > 0 && res.Count >= c.max && res.Reason != StopMax && res.Reason != StopCaller,
				"max reached but stopped for %s", res.Reason)
		}

		// Conservation, on the logical clock.
		assert.Equal(t, arrivedBy(in.now), res.Count+res.Skipped+res.Unread+res.Dropped,
			"count %d skipped %d unread %d at %v", res.Count, res.Skipped, res.Unread, in.now.Sub(start))
		assert.False(t, errors.Is(err, nats.ErrSlowConsumer))
	})
}

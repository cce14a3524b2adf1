// Deadline headers as other hops may write them: under a name in another
// case (an HTTP/2 or gRPC gateway lowercases every header name), or with
// more than one value (a hop that adds its deadline instead of setting
// it). The earliest deadline carried wins, whatever its spelling.

package hedge_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"reqreply/hedge"
)

// TestDeadlineHeaderVariants: DeadlineAt reads every spelling and every
// value of both headers and takes the earliest, so the middleware answers
// an expired one with ExpiredCode and a malformed one with BadDeadlineCode
// (TestDeadlineMiddleware's gateway cases). Before, "request-timeout: 0n"
// ran the handler with no deadline at all.
func TestDeadlineHeaderVariants(t *testing.T) {
	abs := func(now time.Time, d time.Duration) string { return now.Add(d).UTC().Format(time.RFC3339Nano) }
	tests := []struct {
		name   string
		header func(now time.Time) nats.Header
		want   time.Duration // from now, when it runs
		code   string        // the error reply, when it does not
	}{
		{name: "lowercase budget", header: func(time.Time) nats.Header { return nats.Header{"request-timeout": {"2S"}} }, want: 2 * time.Second},
		{name: "lowercase budget spent", header: func(time.Time) nats.Header { return nats.Header{"request-timeout": {"0n"}} }, code: hedge.ExpiredCode},
		{name: "uppercase absolute passed", header: func(now time.Time) nats.Header {
			return nats.Header{"REQUEST-DEADLINE": {abs(now, -time.Second)}}
		}, code: hedge.ExpiredCode},
		{name: "lowercase earlier than canonical", header: func(time.Time) nats.Header {
			return nats.Header{hedge.TimeoutHeader: {"1M"}, "request-timeout": {"2S"}}
		}, want: 2 * time.Second},
		{name: "second value earlier", header: func(now time.Time) nats.Header {
			return nats.Header{hedge.DeadlineHeader: {abs(now, time.Hour), abs(now, -time.Second)}}
		}, code: hedge.ExpiredCode},
		{name: "lowercase malformed", header: func(time.Time) nats.Header { return nats.Header{"request-timeout": {"99999999h"}} }, code: hedge.BadDeadlineCode},
	}
	t.Run("DeadlineAt", func(t *testing.T) {
		now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, ok, err := hedge.DeadlineAt(tc.header(now), now)
				if tc.code == hedge.BadDeadlineCode {
					require.ErrorIs(t, err, hedge.ErrBadDeadline)
					return
				}
				require.NoError(t, err)
				require.True(t, ok)
				if tc.code == "" {
					assert.Equal(t, tc.want, got.Sub(now))
				} else {
					assert.False(t, now.Before(got), "expired")
				}
			})
		}
	})
}

// TestSetDeadlineSpellings: a message reused from a gateway's request,
// with the deadline headers spelled in lowercase, carries only what
// SetDeadline, SetBudget and SetContextDeadline write: an old spelling
// left behind would still count, as DeadlineAt reads every spelling.
func TestSetDeadlineSpellings(t *testing.T) {
	now := time.Now()
	past := now.Add(-time.Second).UTC().Format(time.RFC3339Nano)
	stale := func() *nats.Msg {
		return &nats.Msg{Subject: "svc", Header: nats.Header{"request-timeout": {"0n"}, "REQUEST-DEADLINE": {past}, "Other": {"kept"}}}
	}
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(time.Minute))
	defer cancel()
	tests := []struct {
		name string
		set  func(msg *nats.Msg)
		ok   bool
	}{
		{"SetDeadline", func(m *nats.Msg) { m.Header.Del("request-timeout"); hedge.SetDeadline(m, now.Add(time.Minute)) }, true},
		{"SetBudget", func(m *nats.Msg) { hedge.SetBudget(m, now.Add(time.Minute), now) }, true},
		{"SetContextDeadline", func(m *nats.Msg) { hedge.SetContextDeadline(ctx, m) }, true},
		{"SetContextDeadline without one", func(m *nats.Msg) { hedge.SetContextDeadline(context.Background(), m) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := stale()
			tc.set(msg)
			d, ok, err := hedge.DeadlineAt(msg.Header, now)
			require.NoError(t, err)
			assert.Equal(t, tc.ok, ok)
			if ok {
				assert.True(t, d.After(now.Add(time.Second)), "an old spelling still counts: %v", msg.Header)
			}
			assert.Equal(t, "kept", msg.Header.Get("Other"))
		})
	}
}

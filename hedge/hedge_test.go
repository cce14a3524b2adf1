// Unit tests of the client's pure parts: the adaptive hedge's delay, the
// retry's full-jitter schedule and the deadline header's round trip.

package hedge

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAdaptiveDelay checks the adaptive hedge's delay: the fixed delay
// until the window has MinSamples latencies, then their p95.
func TestAdaptiveDelay(t *testing.T) {
	tests := []struct {
		name    string
		samples int
		want    time.Duration
	}{
		{"no samples: the fixed delay", 0, 3 * time.Millisecond},
		{"too few samples: the fixed delay", MinSamples - 1, 3 * time.Millisecond},
		{"100 samples 1..100 ms: p95 is 95 ms", 100, 95 * time.Millisecond},
		// The window holds 45..300 ms; rank ⌈0.95·256⌉ = 244 is 288 ms.
		{"a full window keeps the last 256", 300, 288 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{policy: Policy{Hedge: Hedge{Delay: 3 * time.Millisecond, Adaptive: true}}, window: NewWindow(DefaultWindow)}
			for i := 1; i <= tc.samples; i++ {
				c.window.Add(time.Duration(i) * time.Millisecond)
			}
			d, ok := c.hedgeDelay()
			require.True(t, ok)
			assert.Equal(t, tc.want, d)
		})
	}
}

// TestBackoffWait checks the full-jitter schedule.
func TestBackoffWait(t *testing.T) {
	b := Backoff{Base: time.Millisecond, Max: 20 * time.Millisecond}
	tests := []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0.5, 500 * time.Microsecond},
		{2, 0.5, time.Millisecond},
		{5, 0.5, 8 * time.Millisecond},
		{6, 0.5, 10 * time.Millisecond}, // capped at 20 ms
		{100, 0.5, 10 * time.Millisecond},
		{3, 0, 0},
		{0, 0.5, 500 * time.Microsecond}, // below 1 counts as 1 (once: a negative shift, a panic)
		{-5, 0.5, 500 * time.Microsecond},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, b.Wait(tc.n, tc.r), "retry %d, r %v", tc.n, tc.r)
	}
	// With no cap, Base·2^(n-1) once overflowed into a small positive
	// ceiling (at n 26 for this Base); the ceiling never falls as n grows.
	uncapped := Backoff{Base: 623347347958, Max: time.Duration(math.MaxInt64)}
	prev := time.Duration(0)
	for n := 1; n <= 100; n++ {
		w := uncapped.Wait(n, 0.5)
		require.GreaterOrEqual(t, w, prev, "retry %d", n)
		prev = w
	}
}

// TestDeadlineHeader checks the header's round trip and Expired.
func TestDeadlineHeader(t *testing.T) {
	at := time.Date(2026, 11, 29, 12, 0, 0, 123456789, time.UTC)
	msg := &nats.Msg{}
	SetDeadline(msg, at)
	assert.Equal(t, "2026-11-29T12:00:00.123456789Z", msg.Header.Get(DeadlineHeader))
	got, ok, err := DeadlineOf(msg)
	require.NoError(t, err)
	require.True(t, ok)
	assert.True(t, got.Equal(at))
	assert.False(t, Expired(msg, at.Add(-time.Nanosecond)))
	assert.True(t, Expired(msg, at))
	msg.Header.Set(DeadlineHeader, "tomorrow")
	_, _, err = DeadlineOf(msg)
	var perr *time.ParseError
	assert.ErrorAs(t, err, &perr)
	assert.False(t, Expired(msg, at), "a malformed deadline never expires")
	assert.False(t, errors.Is(err, nats.ErrTimeout))
}

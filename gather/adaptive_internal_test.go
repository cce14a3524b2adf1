package gather

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// AdaptiveStall's gap after each reply is the longest arrival gap so far
// (the first from the request) plus the margin: it follows a slow start,
// never shrinks after a burst, and grows with a straggler.
func TestAdaptiveGap(t *testing.T) {
	ms := time.Millisecond
	c := &config{margin: 50 * ms, rules: &rules{}} // as AdaptiveStall makes it
	assert.Equal(t, 50*ms, c.gap(), "before any reply: the margin (collect waits for the deadline then)")
	for _, step := range []struct {
		at, want time.Duration
	}{
		{at: 100 * ms, want: 150 * ms}, // the first reply: request to it, plus margin
		{at: 101 * ms, want: 150 * ms}, // a burst does not shrink it
		{at: 102 * ms, want: 150 * ms},
		{at: 302 * ms, want: 250 * ms}, // a straggler 200 ms later widens it
		{at: 310 * ms, want: 250 * ms},
	} {
		_, stop := c.observe(Reply{At: step.at})
		assert.False(t, stop, "AdaptiveStall never stops on a reply")
		assert.Equal(t, step.want, c.gap(), "after the reply at %v", step.at)
	}
	assert.Equal(t, 10*ms, (&config{stall: 10 * ms}).gap(), "Stall's gap is fixed")
	assert.Zero(t, (&config{}).gap(), "no stall rule")
}

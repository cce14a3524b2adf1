// The picture: a one-line timeline of arrivals between request and deadline.

package main

import (
	"fmt"
	"time"

	"reqreply/gather"
)

// TimelineWidth is the number of columns between the request (left edge)
// and the deadline (right edge) in Timeline's picture.
const TimelineWidth = 50

// Timeline draws a gather's result on one line: the request at the left
// '|', the deadline at the right '|', a '*' for each reply in the column of
// its arrival (a digit 2–9 where several share a column, '#' for more) and
// '^' where collection stopped, followed by the count and the reason, e.g.
//
//	|**  * *      *   ^                               |  5 replies, stopped: max reached at 12.3ms
//
// Each column is res.Deadline/TimelineWidth long; a reply with no arrival
// time (a Stream's Result keeps none) is not drawn. at lists arrival times
// when res.Replies is nil.
func Timeline(res gather.Result, at ...time.Duration) string {
	if len(at) == 0 {
		for _, r := range res.Replies {
			at = append(at, r.At)
		}
	}
	counts := make([]int, TimelineWidth)
	for _, t := range at {
		counts[column(t, res.Deadline)]++
	}
	line := make([]byte, TimelineWidth)
	for i, n := range counts {
		switch {
		case n == 0:
			line[i] = ' '
		case n == 1:
			line[i] = '*'
		case n <= 9:
			line[i] = byte('0' + n)
		default:
			line[i] = '#'
		}
	}
	// The stop mark goes in its own column, or the next free one after it.
	for c := column(res.Elapsed, res.Deadline); c < TimelineWidth; c++ {
		if line[c] == ' ' {
			line[c] = '^'
			break
		}
	}
	return fmt.Sprintf("|%s|  %s, stopped: %s at %s", line, plural(res.Count, "reply", "replies"), res.Reason, round(res.Elapsed))
}

// column maps a time since the request to a column of the picture.
func column(t, deadline time.Duration) int {
	if deadline <= 0 || t <= 0 {
		return 0
	}
	c := int(int64(t) * TimelineWidth / int64(deadline))
	return min(c, TimelineWidth-1)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// round shortens a duration for people: 12.3ms, 1.2s, 250µs.
func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

// The few statistics the demo prints besides its percentiles
// (hedge.Percentile): a latency histogram drawn in the terminal.

package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// TimedOut stands for a request that never got its reply in a sorted list of
// latencies: it sorts after every real latency.
const TimedOut = time.Duration(math.MaxInt64)

// ms formats d in milliseconds for a table cell ("timeout" for TimedOut).
func ms(d time.Duration) string {
	switch {
	case d == TimedOut:
		return "timeout"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
}

// histogramBounds are the upper bounds of the histogram's buckets; the last
// bucket holds everything slower, and timeouts.
var histogramBounds = []time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond,
	5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond,
}

// bucketLabels name the histogram's buckets.
var bucketLabels = []string{"≤ 0.25ms", "≤ 0.5ms", "≤ 1ms", "≤ 2ms", "≤ 5ms", "≤ 10ms", "≤ 20ms", "≤ 50ms", "≤ 100ms", "> 100ms"}

// Histogram counts latencies into the buckets of histogramBounds.
func Histogram(latencies []time.Duration) []int {
	counts := make([]int, len(histogramBounds)+1)
	for _, d := range latencies {
		i := 0
		for i < len(histogramBounds) && d > histogramBounds[i] {
			i++
		}
		counts[i]++
	}
	return counts
}

// DrawHistograms writes two latency histograms side by side, one row per
// bucket, as the share of requests in it: a bar of up to width cells and
// the percentage. The bars' length grows with the logarithm of the share
// (1 cell at 0.01%, width at 100%), so the rare slow buckets where a tail
// lives stay visible next to the big fast ones.
func DrawHistograms(w io.Writer, nameA string, a []time.Duration, nameB string, b []time.Duration, width int) {
	ca, cb := Histogram(a), Histogram(b)
	fmt.Fprintf(w, "%-9s %-*s   %s\n", "latency", width+7, nameA, nameB)
	for i := range ca {
		line := fmt.Sprintf("%-9s %s   %s", bucketLabels[i], bar(ca[i], len(a), width), bar(cb[i], len(b), width))
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

// bar draws count out of total as a log-scaled bar and a percentage.
func bar(count, total, width int) string {
	cells := 0
	if count > 0 && total > 0 {
		share := float64(count) / float64(total)
		// 1e-4 → 1 cell, 1 → width cells.
		cells = 1 + int(math.Round(float64(width-1)*(math.Log10(share)+4)/4))
		cells = min(max(cells, 1), width)
	}
	pct := "      "
	if count > 0 {
		pct = fmt.Sprintf("%5.1f%%", 100*float64(count)/float64(max(total, 1)))
	}
	return fmt.Sprintf("%-*s %s", width, strings.Repeat("█", cells), pct)
}

package main

import (
	"os"
	"time"
)

// The demo's picture: two latency histograms side by side, bars on a
// logarithmic scale so that a tail of 1% still shows next to the bulk.
func ExampleDrawHistograms() {
	var baseline, hedged []time.Duration
	for i := range 1000 {
		fast := 300 * time.Microsecond
		switch {
		case i%100 == 0: // 1% stall 50 ms
			baseline = append(baseline, 50*time.Millisecond)
			hedged = append(hedged, 3*time.Millisecond) // the hedge answered
		default:
			baseline = append(baseline, fast)
			hedged = append(hedged, fast)
		}
	}
	DrawHistograms(os.Stdout, "baseline", baseline, "hedged", hedged, 12)
	// Output:
	// latency   baseline              hedged
	// ≤ 0.25ms
	// ≤ 0.5ms   ████████████  99.0%   ████████████  99.0%
	// ≤ 1ms
	// ≤ 2ms
	// ≤ 5ms                           ███████        1.0%
	// ≤ 10ms
	// ≤ 20ms
	// ≤ 50ms    ███████        1.0%
	// ≤ 100ms
	// > 100ms
}

package main

import (
	"fmt"
	"os"
	"time"
)

// The full-jitter schedule of the rolling restart's retries: retry n waits a
// random time below min(20 ms, 1 ms·2^(n-1)); here the draw is 0.5, half the
// ceiling.
func ExampleBackoff_Wait() {
	b := Backoff{Base: time.Millisecond, Max: 20 * time.Millisecond}
	for n := 1; n <= 7; n++ {
		fmt.Printf("retry %d waits %v\n", n, b.Wait(n, 0.5))
	}
	// Output:
	// retry 1 waits 500µs
	// retry 2 waits 1ms
	// retry 3 waits 2ms
	// retry 4 waits 4ms
	// retry 5 waits 8ms
	// retry 6 waits 10ms
	// retry 7 waits 10ms
}

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

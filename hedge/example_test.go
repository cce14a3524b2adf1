// Examples: the 10-20 lines a user copies, checked by go test against the
// server TestMain starts (NATS_URL).

package hedge_test

import (
	"fmt"
	"time"

	"reqreply/hedge"
)

// The full-jitter schedule of the rolling restart's retries: retry n waits a
// random time below min(20 ms, 1 ms·2^(n-1)); here the draw is 0.5, half the
// ceiling.
func ExampleBackoff_Wait() {
	b := hedge.Backoff{Base: time.Millisecond, Max: 20 * time.Millisecond}
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

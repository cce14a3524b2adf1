//go:build unix

package gather_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) the whole test process
// has used: the embedded server, the responders and the requester together.
// On a machine shared with other jobs it moves far less than the wall time,
// so the benchmarks report it beside their timings.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

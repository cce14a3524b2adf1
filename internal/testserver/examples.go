// The TestMain of a pattern package whose Examples connect to NATS_URL.

package testserver

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// RunWithServer is a pattern package's TestMain: it starts the embedded
// nats-server the Examples connect to, sets NATS_URL to it, runs the
// tests, stops the server, and then checks that no goroutine is left. It
// returns the exit code. opts change the server (WithJetStream for a
// package whose Examples use a key-value bucket).
func RunWithServer(m *testing.M, opts ...Option) int {
	s, err := Start(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the examples' server:", err)
		return 1
	}
	if err := os.Setenv("NATS_URL", s.ClientURL()); err != nil {
		Shutdown(s)
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	Shutdown(s)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

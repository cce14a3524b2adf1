// The tests' and the Examples' server: TestMain starts one embedded
// nats-server and sets NATS_URL to it, so that the Examples connect as a
// user's program would; each test starts servers of its own.

package gather_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"reqreply/internal/testserver"
)

// TestMain starts the Examples' server, runs the tests, stops the server,
// and then checks that no goroutine is left: every gather, Mux, connection
// and embedded server must have released its own.
func TestMain(m *testing.M) { os.Exit(runWithServer(m)) }

func runWithServer(m *testing.M) int {
	s, err := testserver.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the examples' server:", err)
		return 1
	}
	if err := os.Setenv("NATS_URL", s.ClientURL()); err != nil {
		testserver.Shutdown(s)
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	testserver.Shutdown(s)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

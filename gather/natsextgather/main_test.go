// The Examples' server: TestMain starts one embedded nats-server and sets
// NATS_URL to it; then it checks that no goroutine is left.

package natsextgather_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"reqreply/internal/testserver"
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
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

package denials_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"reqreply/internal/testserver"
)

// TestMain starts the embedded nats-server the Examples connect to
// (NATS_URL), and checks that no goroutine outlives the tests.
func TestMain(m *testing.M) {

	s, err := testserver.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.Setenv("NATS_URL", s.ClientURL()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	testserver.Shutdown(s)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

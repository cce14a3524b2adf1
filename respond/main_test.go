// The embedded server the examples and tests of this package talk to: one
// nats-server for the whole run, its URL in NATS_URL, as the examples read
// it.

package respond_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"reqreply/internal/testserver"
)

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

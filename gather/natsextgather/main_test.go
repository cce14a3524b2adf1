// The Example's server: TestMain starts one embedded nats-server, sets
// NATS_URL to it, and checks after the tests that no goroutine is left but
// the server's own.

package natsextgather_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"reqreply/internal/testserver"
)

func TestMain(m *testing.M) {
	s, err := testserver.Start()
	if err == nil {
		err = os.Setenv("NATS_URL", s.ClientURL())
	}
	if err != nil {
		panic(err)
	}
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

// The Example's server: TestMain starts one embedded nats-server, sets
// NATS_URL to it, and checks after the tests that no goroutine is left.

package natsextgather_test

import (
	"os"
	"testing"

	"reqreply/internal/testserver"
)

func TestMain(m *testing.M) { os.Exit(testserver.RunWithServer(m)) }

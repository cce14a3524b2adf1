package probe_test

import (
	"os"
	"testing"

	"reqreply/denials"
	"reqreply/internal/testserver"
	"reqreply/probe"
)

// TestMain installs the denial checks every program's probes use (as
// internal/cli does), starts the embedded nats-server the Examples connect
// to (NATS_URL), and checks that no goroutine outlives the tests.
func TestMain(m *testing.M) {
	probe.UseChecks(denials.ProbeChecks{})
	os.Exit(testserver.RunWithServer(m))
}

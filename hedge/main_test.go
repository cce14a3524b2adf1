package hedge_test

import (
	"os"
	"testing"

	"reqreply/internal/cli/clitest"
)

// TestMain starts the embedded nats-server the Examples connect to
// (NATS_URL), and checks that no goroutine outlives the tests.
func TestMain(m *testing.M) { os.Exit(clitest.RunWithServer(m)) }

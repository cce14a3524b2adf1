package hedge_test

import (
	"os"
	"testing"

	"reqreply/internal/testserver"
)

// TestMain starts the embedded nats-server the Examples connect to
// (NATS_URL), and checks that no goroutine outlives the tests.
func TestMain(m *testing.M) { os.Exit(testserver.RunWithServer(m)) }

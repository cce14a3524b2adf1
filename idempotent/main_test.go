package idempotent_test

import (
	"fmt"
	"os"
	"testing"

	"reqreply/internal/testserver"
)

// TestMain starts the embedded nats-server the Example connects to
// (NATS_URL), with JetStream in a temporary directory, and checks that no
// goroutine outlives the tests.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "idempotent-js-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := testserver.RunWithServer(m, testserver.WithJetStream(dir))
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// The embedded server the examples and tests of this package talk to: one
// nats-server for the whole run, its URL in NATS_URL, as the examples read
// it.

package respond_test

import (
	"os"
	"testing"

	"reqreply/internal/testserver"
)

func TestMain(m *testing.M) { os.Exit(testserver.RunWithServer(m)) }
